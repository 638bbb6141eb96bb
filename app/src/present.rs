//! One presentation per event kind: its tone (a palette entry), the rule behind it (a
//! pane's tooltip), and — when it stands for a frame — its wire arrow: which way, what it
//! says, and its kind in exports. The pane, the wire view (live and in the player) and
//! the exports all read it here; the match is exhaustive, so a new event kind does not
//! compile until it is presented, once. (Its one-line label is the event's `Display`,
//! which the trace prints.)

use sync_core::engine::EventKind;
use sync_core::engine::events::send_kind_name;
use sync_core::optimistic::SendKind;
use sync_core::protocol::{CatchUp, Key};

/// What an event means, as a palette entry (`gui::style::color` gives its colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// An optimistic intent, or a push from elsewhere applied.
    Blue,
    /// A request on its way.
    Amber,
    /// A follow-up, or an intent another device's change superseded.
    Purple,
    /// An answer applied.
    Green,
    /// Stale, rolled back, regressed, an error.
    Red,
    /// A rejection by the server.
    Reject,
    /// Nothing to do: echoes, already seen, connection chatter.
    Quiet,
}

/// What the colours of the wire mean, in its legend and the exports' (a regression is
/// drawn thick, in its frame's colour).
pub const LEGEND: [(Tone, &str); 7] = [
    (Tone::Green, "ack"),
    (Tone::Blue, "push"),
    (Tone::Quiet, "own echo / already seen / welcome"),
    (Tone::Red, "ignored as stale"),
    (Tone::Purple, "follow-up"),
    (Tone::Reject, "reject"),
    (Tone::Amber, "request"),
];

/// The legend's entry for a regression (SCENARIOS.md: the screen went back).
pub const REGRESSED_LEGEND: (Tone, &str) = (Tone::Red, "thick: screen went back");

/// A frame's label when applying it took the device's screen back.
pub fn regressed_label(label: &str) -> String {
    format!("{label}  << SCREEN WENT BACK")
}

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Device → server.
    ToServer,
    /// Server → device.
    ToDevice,
}

/// The arrow a frame-bearing event draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrowSpec {
    /// Which way.
    pub way: Way,
    /// What it says on the wire.
    pub label: String,
    /// Its kind in exports (SCENARIOS.md, "Export"): the device's judgement where it made
    /// one (`own-echo`, `stale`, `follow-up`, `reject`, `already-seen`), else the frame's
    /// type (`set`, `command`, `ack`, `push`, `welcome`).
    pub kind: &'static str,
}

/// An event kind's presentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// Its colour's meaning.
    pub tone: Tone,
    /// The rule behind it, in a sentence.
    pub rule: &'static str,
    /// Its arrow, when it stands for a frame.
    pub arrow: Option<ArrowSpec>,
}

fn arrow(way: Way, kind: &'static str, label: String) -> Option<ArrowSpec> {
    Some(ArrowSpec { way, label, kind })
}

/// How `kind` is shown.
pub fn present(kind: &EventKind) -> Presentation {
    use EventKind::*;
    use Way::{ToDevice, ToServer};
    let (tone, rule, arrow) = match kind {
        OptimisticWrite { .. } => (
            Tone::Blue,
            "Optimistic: the screen changes at once, before any I/O",
            None,
        ),
        RequestSent {
            key,
            number,
            value,
            local_rev,
            kind,
            batch,
            ..
        } => {
            let command = matches!(key, Key::Comments(_));
            let what = if command {
                "command".to_string()
            } else {
                format!("= {value}")
            };
            let label = format!(
                "req {number} {key} {what} lr{local_rev} ({})",
                send_kind_name(*kind)
            );
            let (tone, export) = match (kind, command) {
                (SendKind::FollowUp, _) => (Tone::Purple, "follow-up"),
                (_, true) => (Tone::Amber, "command"),
                _ => (Tone::Amber, "set"),
            };
            (
                tone,
                "One request per key in flight; later taps wait for its answer",
                // A write inside a batch travels in the batch's frame, which has the arrow.
                match batch {
                    None => arrow(ToServer, export, label),
                    Some(_) => None,
                },
            )
        }
        BatchSent { id, keys } => {
            let mut label = format!("batch #{id}: {} writes (", keys.len());
            for (i, key) in keys.iter().take(3).enumerate() {
                label.push_str(&format!("{}{key}", if i == 0 { "" } else { ", " }));
            }
            if keys.len() > 3 {
                label.push_str(&format!(", +{} more", keys.len() - 3));
            }
            label.push(')');
            (
                Tone::Amber,
                "Writes due at once after a welcome leave in one batch frame: each is answered alone, then batch_done",
                arrow(ToServer, "batch", label),
            )
        }
        TokenReceived => (
            Tone::Quiet,
            "The token source (the account the user's devices share) handed over a new token",
            None,
        ),
        TokenExpired => (
            Tone::Red,
            "The token was rotated away: writes are refused (nothing applied) until the device re-authenticates with the new one, within 30 s",
            arrow(ToDevice, "error", "error token_expired".into()),
        ),
        KeptForToken { key } => (
            Tone::Amber,
            "Refused because the token expired, not because of its value: the intent is kept (no rollback) and resent after authed",
            arrow(
                ToDevice,
                "reject",
                format!("reject {key} token_expired (kept)"),
            ),
        ),
        AuthSent { id } => (
            Tone::Amber,
            "Re-authenticating the open connection with the new token: no reconnect, nothing lost",
            arrow(ToServer, "auth", format!("auth #{id} (new token)")),
        ),
        Authed { id } => (
            Tone::Green,
            "The connection runs on the new token: what waited goes out by the rule after a welcome",
            arrow(ToDevice, "authed", format!("authed #{id}")),
        ),
        BatchDone { id, count } => (
            Tone::Quiet,
            "The server answered every write of the batch (their answers came first); the pushes follow",
            arrow(
                ToDevice,
                "batch_done",
                format!("batch_done #{id}: {count} answered"),
            ),
        ),
        RequestQueued { .. } => (
            Tone::Quiet,
            "Not connected: the intent is kept and sent after the next welcome",
            None,
        ),
        FollowUpDecided { key, rev } => (
            Tone::Purple,
            "The user acted after the request went out: its answer is dropped and one follow-up carries the newest intent",
            arrow(
                ToDevice,
                "follow-up",
                format!("ack {key} rev {rev} dropped: follow-up"),
            ),
        ),
        ResponseApplied { key, value, rev } => (
            Tone::Green,
            "The server's answer is applied once the key is stable (its value may be normalised)",
            arrow(ToDevice, "ack", format!("ack {key} = {value} rev {rev}")),
        ),
        ResponseStale { key, rev, known } => (
            Tone::Red,
            "Stale: its revision is lower than one already known, so it is ignored",
            arrow(
                ToDevice,
                "stale",
                format!("ack {key} rev {rev} STALE (known {known})"),
            ),
        ),
        PushStale { key, rev, known } => (
            Tone::Red,
            "Stale: its revision is lower than one already known, so it is ignored",
            arrow(
                ToDevice,
                "stale",
                format!("push {key} rev {rev} STALE (known {known})"),
            ),
        ),
        PushApplied {
            key,
            value,
            rev,
            local_rev,
            own: true,
            ..
        } => (
            Tone::Quiet,
            "This device's own write, echoed by the server with a revision newer than any it knew: applied like any push (under sync-with-push it came before its ack; naive applies every echo)",
            arrow(
                ToDevice,
                "own-echo",
                format!("own echo {key} = {value} rev {rev} lr{local_rev} (applied)"),
            ),
        ),
        PushApplied {
            key,
            value,
            rev,
            from,
            local_rev,
            own: false,
        } => (
            Tone::Blue,
            "A newer revision from the server is applied at once, even while a request is in flight",
            arrow(
                ToDevice,
                "push",
                format!("push {key} = {value} rev {rev} from {from} lr{local_rev}"),
            ),
        ),
        PushAlreadySeen { key, rev } => (
            Tone::Quiet,
            "The same revision as known (the own echo after its ack): nothing to do",
            arrow(
                ToDevice,
                "already-seen",
                format!("push {key} rev {rev} (already seen)"),
            ),
        ),
        PushTakenAsAck {
            key,
            rev,
            local_rev,
        } => (
            Tone::Quiet,
            "The echo of an older request of this device: only an acknowledgement",
            arrow(
                ToDevice,
                "own-echo",
                format!("own echo {key} rev {rev} = ack of lr{local_rev}"),
            ),
        ),
        OwnEchoIgnored { key, rev } => (
            Tone::Quiet,
            "sync ignores its own echoes",
            arrow(
                ToDevice,
                "own-echo",
                format!("own echo {key} rev {rev} ignored"),
            ),
        ),
        Superseded { .. } => (
            Tone::Purple,
            "Another device's newer change won: the unanswered intent is not resent",
            None,
        ),
        Rejected { key, code, .. } => (
            Tone::Reject,
            "The server refused the write: the screen goes back to the server's value if it still shows the refused one",
            arrow(ToDevice, "reject", format!("reject {key} {code}")),
        ),
        RolledBack { .. } => (
            Tone::Red,
            "The server refused the write: the screen goes back to the server's value if it still shows the refused one",
            None,
        ),
        Regressed { .. } => (
            Tone::Red,
            "The screen went back: an answer to an older request than the newest intent, or a revision lower than the known one, was applied over what the user saw (naive's flicker; sync's late push). sync-with-push never does this",
            None,
        ),
        CommandRefused { .. } => (
            Tone::Quiet,
            "Comments are non-reentrant per post: wait for the pending one",
            None,
        ),
        Error { .. } => (Tone::Red, "Something could not be handled", None),
        Connection { .. } => (
            Tone::Quiet,
            "Connection: reconnects with backoff; a welcome brings every change since the cursor",
            None,
        ),
        CaughtUp {
            rev,
            changes,
            reset,
        } => (
            Tone::Quiet,
            "Connection: reconnects with backoff; a welcome brings every change since the cursor",
            arrow(
                ToDevice,
                "welcome",
                format!(
                    "welcome rev {rev}, {changes} change(s){}",
                    if *reset { ", reset" } else { "" }
                ),
            ),
        ),
        UpgradeRefused { status, in_a_row } => (
            Tone::Red,
            "The WebSocket upgrade was refused with an HTTP status (a proxy, or the server, blocks WebSockets): after `fallback after` refusals in a row the device polls over HTTP. Resets and timeouts never count",
            arrow(
                ToDevice,
                "refused",
                format!("upgrade refused: HTTP {status} ({in_a_row} in a row)"),
            ),
        ),
        PollSent { catch_up, .. } => (
            Tone::Amber,
            "Polling: HTTP carries no pushes, so every poll interval the device asks what changed since its cursor",
            arrow(
                ToServer,
                "poll",
                format!("GET changes {}", catch_up_words(catch_up)),
            ),
        ),
        PollAnswered {
            rev,
            changes,
            reset,
            ..
        } => (
            Tone::Quiet,
            "A poll's changes are applied by the strategy's push rules, like a welcome's: naive lets one overwrite an intent in flight, sync-with-push does not",
            arrow(
                ToDevice,
                "poll",
                format!(
                    "changes rev {rev}, {changes} change(s){}",
                    if *reset { ", reset" } else { "" }
                ),
            ),
        ),
        PollFailed { .. } => (
            Tone::Red,
            "A poll that got no answer fails alone: the next one goes at the interval",
            None,
        ),
        HttpWriteFailed { .. } => (
            Tone::Red,
            "A write over HTTP that got no answer fails alone: what it carried is sent again after the next successful poll",
            None,
        ),
    };
    Presentation { tone, rule, arrow }
}

/// `since 4` or `since time 1767225600000`.
fn catch_up_words(catch_up: &CatchUp) -> String {
    match catch_up {
        CatchUp::Since(n) => format!("since {n}"),
        CatchUp::SinceTime(ms) => format!("since time {ms}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sync_core::protocol::ErrorCode;

    use super::*;

    fn export_kind(kind: EventKind) -> &'static str {
        present(&kind).arrow.expect("a frame").kind
    }

    #[test]
    fn a_frame_is_exported_as_the_devices_judgement_of_it() {
        let key = || Key::Like("post-1".into());
        let push = |own| EventKind::PushApplied {
            key: key(),
            value: json!(true),
            rev: 2,
            from: "phone".into(),
            local_rev: 1,
            own,
        };
        assert_eq!(export_kind(push(true)), "own-echo");
        assert_eq!(export_kind(push(false)), "push");
        let stale = EventKind::PushStale {
            key: key(),
            rev: 1,
            known: 2,
        };
        assert_eq!(export_kind(stale), "stale");
        let seen = EventKind::PushAlreadySeen { key: key(), rev: 2 };
        assert_eq!(export_kind(seen), "already-seen");
        let reject = EventKind::Rejected {
            key: key(),
            code: ErrorCode::Forced,
            message: String::new(),
        };
        assert_eq!(export_kind(reject), "reject");
        let request = |kind, batch| EventKind::RequestSent {
            key: key(),
            id: 5,
            number: 2,
            value: json!(true),
            local_rev: 2,
            kind,
            batch,
        };
        assert_eq!(export_kind(request(SendKind::FollowUp, None)), "follow-up");
        assert_eq!(export_kind(request(SendKind::First, None)), "set");
        assert!(
            present(&request(SendKind::Queued, Some(7))).arrow.is_none(),
            "a write in a batch travels in the batch's frame"
        );
        let batch = EventKind::BatchSent {
            id: 7,
            keys: vec![key(), Key::DarkMode, Key::Volume, Key::Notifications],
        };
        let arrow = present(&batch).arrow.expect("a batch is a frame");
        assert_eq!(arrow.kind, "batch");
        assert_eq!(
            arrow.label,
            "batch #7: 4 writes (like/post-1, settings/dark_mode, settings/volume, +1 more)"
        );
        let done = EventKind::BatchDone { id: 7, count: 4 };
        assert_eq!(export_kind(done), "batch_done");
        let intent = EventKind::OptimisticWrite {
            key: key(),
            value: json!(true),
            local_rev: 1,
        };
        assert!(present(&intent).arrow.is_none(), "an intent is no frame");
    }
}
