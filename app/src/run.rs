//! `app run FILE...`: scenarios, headless. Prints the trace (one line per event, with
//! virtual time) and a verdict per file; the exit code is the worst of all files: 0 when
//! every expectation held, 1 when one failed, 2 when a file could not be read or parsed.

use std::path::PathBuf;

use mock_server::scenario::{Runner, Verdict, parse};

/// Exit code: every expectation held.
pub const PASS: u8 = 0;
/// Exit code: an expectation (or a statement) failed.
pub const FAIL: u8 = 1;
/// Exit code: a file could not be read or parsed.
pub const BROKEN: u8 = 2;

/// Runs each file and returns the exit code.
pub fn run_files(files: &[PathBuf], seed: u64, quiet: bool) -> u8 {
    let mut worst = PASS;
    for path in files {
        let code = run_file(path, seed, quiet);
        worst = worst.max(code);
    }
    worst
}

fn run_file(path: &PathBuf, seed: u64, quiet: bool) -> u8 {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            println!("ERROR {name}: cannot read: {e}");
            return BROKEN;
        }
    };
    let scenario = match parse(&name, &text) {
        Ok(s) => s,
        Err(e) => {
            println!("ERROR {e}");
            return BROKEN;
        }
    };
    let mut runner = Runner::new(scenario, seed);
    if !quiet {
        let title = runner
            .scenario()
            .title
            .clone()
            .unwrap_or_else(|| name.clone());
        println!("== {title} (seed {seed})");
    }
    let mut printed = 0;
    loop {
        let more = runner.step().is_some();
        if !quiet {
            for line in runner.trace_lines(printed) {
                println!("{line}");
            }
        }
        printed = runner.world().trace.len();
        if !more {
            break;
        }
    }
    match runner.run_to_end() {
        Verdict::Pass => {
            println!("PASS {name}");
            PASS
        }
        Verdict::Fail { line, message } => {
            println!("FAIL {name}:{line}: {message}");
            FAIL
        }
    }
}
