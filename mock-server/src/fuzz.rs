//! One fuzz input through the client-frame decoder and the server core, with the checks
//! that make a run more than "it did not panic".
//!
//! [`run`] is the body of the cargo-fuzz target in `mock-server/fuzz/` (a manual job: see
//! the README), and of the test `fuzz_corpus` that runs it over the seed corpus and seeded
//! mutations of it on every `cargo test`, so the harness itself never rots.
//!
//! **Input.** Lines, each one frame. The first byte of a line picks the connection (three
//! connections of one user, opened at the start); the rest is the frame's text, as the
//! socket would hand it over (invalid UTF-8 arrives as a binary frame). Each line is one
//! millisecond after the previous, and a first byte of 0xFF is a ten-second pause instead
//! (timeouts, the rate limit's refill).
//!
//! **Checks.**
//! - The decoder: a frame it accepts encodes and decodes back to itself.
//! - The core: every frame it sends is one a client can decode; revisions are assigned
//!   gap-free (`head` = accepted writes); a fresh acknowledgement carries a revision above
//!   every earlier one, and a duplicate one a revision already assigned.

use std::collections::BTreeMap;
use std::time::Duration;

use sync_core::protocol::{ServerFrame, decode_client_frame, decode_server_frame};

use crate::core::store::MemoryStore;
use crate::core::{Action, ConnId, Core, DEMO_USER, Inbound};

/// Connections a fuzz input can address.
pub const CONNECTIONS: u8 = 3;

/// Runs one input; panics on a broken check (the fuzzer reports that as a crash).
/// Returns how many writes were acknowledged (so a test can tell that inputs reach the
/// write pipeline, not only the decoder).
pub fn run(data: &[u8]) -> u64 {
    let mut core =
        Core::new(BTreeMap::new(), MemoryStore::default()).expect("a memory store always loads");
    let mut now = Duration::ZERO;
    for c in 0..CONNECTIONS {
        core.connect(ConnId(u64::from(c)), now);
    }
    let mut fresh = 0;
    for line in data.split(|&b| b == b'\n') {
        let Some((&first, text)) = line.split_first() else {
            continue;
        };
        if first == 0xFF {
            now += Duration::from_secs(10);
            let actions = core.on_timeout(now);
            check_sent(&core, actions, &mut fresh);
            continue;
        }
        now += Duration::from_millis(1);
        let inbound = match std::str::from_utf8(text) {
            Ok(text) => {
                check_decoder(text);
                Inbound::Text(text.to_string())
            }
            Err(_) => Inbound::Binary,
        };
        let conn = ConnId(u64::from(first % CONNECTIONS));
        let actions = core.handle(vec![(conn, inbound)], now);
        check_sent(&core, actions, &mut fresh);
    }
    core.writes()
}

/// A frame the decoder accepts survives encoding and decoding unchanged.
fn check_decoder(text: &str) {
    if let Ok(frame) = decode_client_frame(text) {
        let again = decode_client_frame(&frame.to_json());
        assert_eq!(again.as_ref(), Ok(&frame), "round trip of {text:?}");
    }
}

/// What the core sent is decodable, and revisions are gap-free. `fresh` is the revision
/// of the last fresh (not duplicate) acknowledgement so far.
fn check_sent<S: crate::core::store::Store>(core: &Core<S>, actions: Vec<Action>, fresh: &mut u64) {
    let head = core.user(DEMO_USER).map_or(0, |u| u.head);
    assert_eq!(head, core.writes(), "one revision per accepted write");
    for action in actions.into_iter().flat_map(Action::per_connection) {
        let Action::Send(_, frame) = action else {
            continue;
        };
        let json = frame.to_json();
        let back = decode_server_frame(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, frame, "round trip of {json}");
        if let ServerFrame::Ack { rev, duplicate, .. } = frame {
            assert!(
                (1..=head).contains(&rev),
                "an ack's revision {rev} was assigned (head {head})"
            );
            if !duplicate {
                assert!(
                    rev > *fresh,
                    "a fresh ack's revision {rev} is new (after {fresh})"
                );
                *fresh = rev;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::rng::Rng;

    /// The seed corpus of the cargo-fuzz target: one valid frame per message type, and a
    /// few invalid ones (the same files the fuzzer starts from).
    fn corpus() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/frames");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "the corpus is in {}", dir.display());
        files
    }

    /// Flips, inserts, deletes and splices bytes, as a fuzzer's first mutations would.
    fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.up_to(3) {
            let at = rng.up_to(out.len() as u64) as usize;
            match rng.up_to(3) {
                0 if at < out.len() => out[at] ^= 1 << rng.up_to(7),
                1 => {
                    const BYTES: &[u8] = b"{}[]\",:0-e\n\xff";
                    out.insert(at, BYTES[rng.up_to(BYTES.len() as u64 - 1) as usize]);
                }
                2 if at < out.len() => {
                    out.remove(at);
                }
                _ => {
                    let from = rng.up_to(other.len() as u64) as usize;
                    out.splice(at..at, other[from..].iter().copied().take(16));
                }
            }
        }
        out
    }

    #[test]
    fn fuzz_corpus_and_seeded_mutations_pass_every_check() {
        let corpus = corpus();
        let seeded: u64 = corpus.iter().map(|input| run(input)).sum();
        assert!(
            seeded >= 5,
            "the seeds reach the write pipeline ({seeded} writes)"
        );
        let mut rng = Rng::new(0x5eed);
        let mut mutated = 0;
        for _ in 0..3000 {
            let a = &corpus[rng.up_to(corpus.len() as u64 - 1) as usize];
            let b = &corpus[rng.up_to(corpus.len() as u64 - 1) as usize];
            mutated += run(&mutate(a, b, &mut rng));
        }
        assert!(mutated > 300, "mutants still write ({mutated} writes)");
    }

    #[test]
    #[should_panic(expected = "one revision per accepted write")]
    fn the_checks_can_fail() {
        // A core whose counter disagrees with its head: restored from a store whose
        // `writes` was tampered with.
        let mut store = MemoryStore::default();
        crate::core::store::Store::commit(
            &mut store,
            &[crate::core::store::Record {
                user: DEMO_USER.into(),
                key: sync_core::protocol::Key::parse("like/a").unwrap(),
                stored: crate::core::store::Stored {
                    value: serde_json::json!(true),
                    rev: 2,
                    device_id: "d".into(),
                    local_rev: 1,
                    time_ms: 0,
                },
            }],
        )
        .unwrap();
        let core = Core::new(BTreeMap::new(), store).unwrap();
        check_sent(&core, Vec::new(), &mut 0);
    }
}
