//! The scenario language of SCENARIOS.md: [`parse()`] a file into an [`ast::Scenario`],
//! then [`run::Runner`] plays it on the simulator, statement by statement, checking
//! DESIGN.md's invariants as it goes; [`write()`] is the parser's inverse, and
//! [`shrink::shrink`] cuts a failing scenario down to a short counterexample.

pub mod ast;
pub mod parse;
pub mod run;
pub mod shrink;
pub mod write;

#[cfg(test)]
mod tests;

pub use parse::{ParseError, parse};
pub use run::{Runner, StepOutcome, Verdict};
pub use write::write;
