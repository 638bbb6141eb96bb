//! The lessons shipped with the app, and how the lesson list names them.

/// A lesson shipped with the app: its file name and text.
macro_rules! lesson {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../../../assets/scenarios/", $file)),
        )
    };
}

/// The lessons of `assets/scenarios/`, built in (a test checks the list is complete).
pub const LESSONS: &[(&str, &str)] = &[
    lesson!("01-three-taps-sync.scn"),
    lesson!("02-three-taps-sync-with-push.scn"),
    lesson!("03-follow-up.scn"),
    lesson!("04-normalised-value.scn"),
    lesson!("05-stale-push.scn"),
    lesson!("06-own-echo-as-ack.scn"),
    lesson!("07-newer-push-supersedes.scn"),
    lesson!("08-per-key-independence.scn"),
    lesson!("09-rollback-like.scn"),
    lesson!("10-rollback-comment.scn"),
    lesson!("11-invalid-value.scn"),
    lesson!("12-offline-intents.scn"),
    lesson!("13-lost-ack-resend.scn"),
    lesson!("14-server-restart.scn"),
    lesson!("15-device-restart.scn"),
    lesson!("16-contiguous-cursor.scn"),
    lesson!("17-naive-flicker.scn"),
    lesson!("18-sync-loses-intent.scn"),
    lesson!("19-sync-regresses.scn"),
    lesson!("20-improvement-newer-intent-after-reject.scn"),
    lesson!("21-server-writes.scn"),
    lesson!("22-lossy-network.scn"),
    lesson!("23-offline-superseded.scn"),
    lesson!("24-slider-drag.scn"),
    lesson!("25-one-comment-at-a-time.scn"),
    lesson!("26-arrival-order-wins.scn"),
    lesson!("27-out-of-order-uplink.scn"),
    lesson!("28-jitter-keeps-order.scn"),
    lesson!("29-lost-push-catch-up.scn"),
    lesson!("30-offline-with-held-request.scn"),
    lesson!("31-bounded-reconnect.scn"),
    lesson!("32-comment-edits.scn"),
    lesson!("33-offline-batch.scn"),
    lesson!("34-token-rotation.scn"),
    lesson!("35-shut-out-after-30s.scn"),
    lesson!("36-clock-cursor.scn"),
    lesson!("37-blocked-websocket-polling.scn"),
    lesson!("38-poll-overwrites-naive.scn"),
];

/// How a lesson is listed: its number and its `scenario` title (the file name if it has
/// none).
pub fn lesson_title(index: usize) -> String {
    let (file, text) = LESSONS[index];
    let title = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("scenario "))
        .map(|t| t.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| file.to_string());
    format!("{:02}  {title}", index + 1)
}
