//! Every lesson in `assets/scenarios/` runs under `cargo test` and must pass; each must
//! also teach (a title and comment lines saying what it shows).

use std::path::PathBuf;

use mock_server::scenario::ast::Stmt;
use mock_server::scenario::{Runner, Verdict, parse};

fn scn_files(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "scn"))
        .collect();
    files.sort();
    files
}

fn lessons() -> Vec<PathBuf> {
    scn_files("../assets/scenarios")
}

/// Scenarios that pin down bugs found by the property tests.
#[test]
fn every_regression_scenario_passes() {
    let files = scn_files("tests/regressions");
    assert!(!files.is_empty());
    for path in files {
        let name = path.display().to_string();
        let scenario = parse(&name, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let verdict = Runner::new(scenario, 0).run_to_end().clone();
        assert_eq!(verdict, Verdict::Pass, "{name}");
    }
}

#[test]
fn every_lesson_passes_and_explains_itself() {
    let files = lessons();
    assert!(
        files.len() >= 30,
        "at least 30 lessons, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let scenario = match parse(&name, &text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{e}"));
                continue;
            }
        };
        if scenario.title.is_none() || scenario.about.len() < 2 {
            failures.push(format!(
                "{name}: a lesson needs a title and comment lines explaining it"
            ));
        }
        let says = scenario
            .steps
            .iter()
            .filter(|s| matches!(s.stmt, Stmt::Say(_)))
            .count();
        if says < 2 {
            failures.push(format!(
                "{name}: a lesson tells its story in `say` lines (found {says})"
            ));
        }
        if let Verdict::Fail { line, message } = Runner::new(scenario, 0).run_to_end() {
            failures.push(format!("{name}:{line}: {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_lossy_lesson_converges_under_many_seeds() {
    let path = lessons()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("lossy"))
        .expect("the lossy-network lesson");
    let text = std::fs::read_to_string(&path).unwrap();
    for seed in 0..50 {
        let scenario = parse("lossy", &text).unwrap();
        let verdict = Runner::new(scenario, seed).run_to_end().clone();
        assert_eq!(verdict, Verdict::Pass, "seed {seed}");
    }
}
