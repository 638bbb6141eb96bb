//! The load generator runs end to end (a tiny load: this checks it works, not how fast).

use std::process::Command;

#[test]
fn loadgen_reports_every_figure_on_a_tiny_load() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--seconds", "1", "--rounds", "2", "--users", "2"])
        .args(["--devices-per-user", "2"])
        .args(["--latency-devices", "2", "--latency-rate", "20"])
        .args([
            "--slow-readers",
            "1",
            "--idle-devices",
            "10",
            "--settle",
            "0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for line in [
        "durable writes/s",
        "pushes delivered/s",
        "sync/echo =",
        "sync/relay =",
        " µs per write in the sync server",
        " µs per write against the sync server",
        "host steal",
        "host pace",
        "outside the host's slow spells",
        "slices a server",
        "ack latency",
        "echo latency",
        "relay latency",
        "server RSS",
        "devices reading them",
        "slow readers",
        "with them reading =",
        "idle devices",
        "KiB per idle connection",
        "the latency load beside them",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    assert!(
        text.contains("(0 rejected)"),
        "paced under the limit:\n{text}"
    );
}

#[test]
fn loadgen_refuses_a_pace_over_the_rate_limit() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--pace", "250"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("over the server's limit"), "{err}");
}

#[test]
fn loadgen_refuses_slices_the_idle_timeout_would_cut() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--seconds", "30", "--rounds", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("slices of 6.0 s, over 5 s"), "{text}");
    assert!(text.contains("raise --rounds"), "{text}");
}
