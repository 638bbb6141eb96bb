//! `app run FILE...`: scenarios, headless. Prints the trace (one line per event, with
//! virtual time) and a verdict per file; the exit code is the worst of all files: 0 when
//! every expectation held, 1 when one failed (or an invariant broke: the runner checks
//! DESIGN.md's invariants as it goes), 2 when a file could not be read or parsed.
//! `--svg`, `--mermaid` and `--trace-json` also write the run's exports ([`crate::export`],
//! from time 0) without changing stdout or the exit code when they succeed; they take one
//! file, and an export that cannot be written is an error (exit 2).

use std::path::{Path, PathBuf};

use mock_server::scenario::{Runner, Verdict, parse};

use crate::export;

/// Where to write a run's exports.
#[derive(Debug, Default)]
pub struct Exports {
    /// The wire diagram as SVG.
    pub svg: Option<PathBuf>,
    /// The wire diagram as a Mermaid sequenceDiagram.
    pub mermaid: Option<PathBuf>,
    /// The trace as JSON lines.
    pub trace_json: Option<PathBuf>,
}

impl Exports {
    fn any(&self) -> bool {
        self.svg.is_some() || self.mermaid.is_some() || self.trace_json.is_some()
    }

    /// Writes what was asked for; the error names the file.
    fn write(&self, runner: &Runner, name: &str) -> Result<(), String> {
        let world = runner.world();
        let t0 = runner.t0();
        let devices: Vec<String> = world.devices().iter().map(|d| d.name.clone()).collect();
        let frames = export::frames_of_trace(runner.trace(), t0);
        let title = runner
            .scenario()
            .title
            .clone()
            .unwrap_or_else(|| name.into());
        let write = |path: &Option<PathBuf>, text: String| match path {
            Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
            None => Ok(()),
        };
        write(&self.svg, export::svg(&title, &devices, &frames))?;
        write(&self.mermaid, export::mermaid(&devices, &frames))?;
        write(&self.trace_json, export::trace_jsonl(runner.trace(), t0))
    }
}

/// Exit code: every expectation held.
pub const PASS: u8 = 0;
/// Exit code: an expectation (or a statement) failed.
pub const FAIL: u8 = 1;
/// Exit code: a file could not be read or parsed.
pub const BROKEN: u8 = 2;

/// Runs each file and returns the exit code.
pub fn run_files(files: &[PathBuf], seed: u64, quiet: bool, exports: &Exports) -> u8 {
    if exports.any() && files.len() != 1 {
        println!(
            "ERROR --svg, --mermaid and --trace-json export one run: give one FILE, not {}",
            files.len()
        );
        return BROKEN;
    }
    let mut worst = PASS;
    for path in files {
        let code = run_file(path, seed, quiet, exports);
        worst = worst.max(code);
    }
    worst
}

fn run_file(path: &Path, seed: u64, quiet: bool, exports: &Exports) -> u8 {
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
    let verdict = runner.run_to_end().clone();
    if let Err(e) = exports.write(&runner, &name) {
        println!("ERROR cannot write an export: {e}");
        return BROKEN;
    }
    match verdict {
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
