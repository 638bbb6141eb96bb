//! `app run FILE...`, the headless scenario runner, as a user runs it: the real binary,
//! its output and its exit code (SCENARIOS.md, "Running a file").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scenario file in a fresh temporary directory (removed with the directory).
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(test: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("sync-lab-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PASSES: &str = "scenario \"Passes\"\ndevices phone laptop\nphone tap like/a\nsettle\nexpect laptop like/a = true\n";
const FAILS: &str =
    "devices phone\nphone tap like/a\nsettle\nexpect phone like/a = false\nphone tap like/b\n";
const BROKEN: &str = "devices phone\nphone jump\n";

fn run(args: &[&str], files: &[&Path]) -> (i32, String) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("run")
        .args(args)
        .args(files)
        .output()
        .unwrap();
    (
        status.code().expect("exited"),
        String::from_utf8(stdout).unwrap(),
    )
}

#[test]
fn a_passing_file_prints_its_trace_and_pass_and_exits_0() {
    let f = Files::new("pass");
    let pass = f.write("pass.scn", PASSES);
    let (code, out) = run(&["--seed", "7"], &[&pass]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("== Passes (seed 7)\n"), "{out}");
    assert!(out.contains("phone    intent like/a = true"), "{out}");
    assert!(
        out.ends_with(&format!("PASS {}\n", pass.display())),
        "{out}"
    );
}

#[test]
fn a_failing_expectation_names_the_file_and_line_exits_1_and_stops_the_file() {
    let f = Files::new("fail");
    let fails = f.write("fails.scn", FAILS);
    let (code, out) = run(&["--quiet"], &[&fails]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        format!(
            "FAIL {}:4: expected phone like/a = false, got true\n",
            fails.display()
        )
    );
    // Without --quiet: the trace up to the failure, and nothing of line 5.
    let (code, out) = run(&[], &[&fails]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("intent like/a"), "{out}");
    assert!(
        !out.contains("like/b"),
        "the file stopped at line 4:\n{out}"
    );
}

#[test]
fn every_file_runs_and_the_worst_exit_code_wins() {
    let f = Files::new("worst");
    let pass = f.write("pass.scn", PASSES);
    let fails = f.write("fails.scn", FAILS);
    let broken = f.write("broken.scn", BROKEN);
    let missing = f.dir.join("missing.scn");
    let (code, out) = run(&["--quiet"], &[&broken, &fails, &pass]);
    assert_eq!(code, 2, "a parse error beats a failure:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one verdict per file, nothing else:\n{out}");
    assert!(
        lines[0].starts_with(&format!("ERROR {}:2:7: ", broken.display())),
        "{out}"
    );
    assert!(lines[1].starts_with("FAIL "), "{out}");
    assert!(lines[2].starts_with("PASS "), "{out}");
    let (code, out) = run(&["--quiet"], &[&pass, &fails]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = run(&["--quiet"], &[&missing]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("ERROR "), "{out}");
    assert!(out.contains("cannot read"), "{out}");
}

#[test]
fn a_bad_flag_is_refused_by_name() {
    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_app"))
        .args(["run", "--seed", "seven", "x.scn"])
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let stderr = String::from_utf8(stderr).unwrap();
    assert!(stderr.contains("--seed"), "{stderr}");
}

/// The exports: an SVG with one element per frame and its kind, a Mermaid diagram, the
/// trace as JSON lines; stdout and the exit code as without them.
#[test]
fn exports_write_svg_mermaid_and_json_lines_without_changing_the_output() {
    let files = Files::new("exports");
    let lesson =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/scenarios/05-stale-push.scn");
    let (svg, mmd, jsonl) = (
        files.dir.join("out.svg"),
        files.dir.join("out.mmd"),
        files.dir.join("out.jsonl"),
    );
    let plain = run(&[], &[&lesson]);
    let args = [
        "--svg",
        svg.to_str().unwrap(),
        "--mermaid",
        mmd.to_str().unwrap(),
        "--trace-json",
        jsonl.to_str().unwrap(),
    ];
    assert_eq!(run(&args, &[&lesson]), plain, "same stdout and exit code");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    let frames = svg.matches(r#"<g class="frame""#).count();
    assert_eq!(frames, 8, "one element per frame the devices handled");
    assert_eq!(
        svg.matches(r#"data-kind="stale""#).count(),
        1,
        "the late push"
    );
    assert_eq!(svg.matches(r#"data-kind="already-seen""#).count(), 2);
    let mmd = std::fs::read_to_string(&mmd).unwrap();
    assert!(mmd.starts_with("sequenceDiagram\n"));
    assert_eq!(mmd.matches("server-->>laptop").count(), 2, "{mmd}");
    assert!(
        !mmd.contains('#') && !mmd.contains(';'),
        "no Mermaid syntax in the text"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["t_ms"].is_number() && l["device"].is_string() && l["kind"].is_string())
    );
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "push_stale" && l["device"] == "laptop" && l["rev"] == 1)
    );
}

#[test]
fn exports_take_one_file_and_a_writable_path() {
    let files = Files::new("exports-bad");
    let a = files.write("a.scn", PASSES);
    let b = files.write("b.scn", PASSES);
    let (code, out) = run(&["--svg", "x.svg"], &[&a, &b]);
    assert_eq!(code, 2);
    assert!(out.contains("give one FILE, not 2"), "{out}");
    let nowhere = files.dir.join("no/such/dir/out.svg");
    let (code, out) = run(&["--svg", nowhere.to_str().unwrap()], &[&a]);
    assert_eq!(code, 2);
    assert!(
        out.contains("cannot write an export") && out.contains("out.svg"),
        "{out}"
    );
}

/// `--open-at-failure` opens one file in the player: more files, or one that cannot be
/// read or parsed, are refused before any window opens (exit 2, saying why).
#[test]
fn open_at_failure_takes_one_readable_file() {
    let files = Files::new("open-at-failure");
    let (a, b) = (files.write("a.scn", PASSES), files.write("b.scn", FAILS));
    let (code, out) = run(&["--open-at-failure"], &[&a, &b]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--open-at-failure opens one FILE, not 2"),
        "{out}"
    );
    let broken = files.write("broken.scn", BROKEN);
    let (code, out) = run(&["--open-at-failure"], &[&broken]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("ERROR "), "{out}");
    let missing = files.dir.join("missing.scn");
    let (code, out) = run(&["--open-at-failure"], &[&missing]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot read"), "{out}");
}
