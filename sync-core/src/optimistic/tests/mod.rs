//! The reference's numbered test vectors (`reference/optimistic-algorithms.md`), one test
//! per vector, named after its number, plus a test per deliberate improvement.

mod command_vectors;
mod sync_vectors;
mod sync_with_push_vectors;
