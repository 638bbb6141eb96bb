//! Sync Lab: the desktop app (being built) and the headless scenario runner.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sync Lab makes multi-device optimistic sync visible.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenario files headless: prints the trace and PASS / FAIL per file.
    /// Exit code 0 when every expectation held, 1 when one failed, 2 when a file could
    /// not be read or parsed.
    Run {
        /// Scenario files (`*.scn`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Seed of the simulator's RNG (jitter, loss, backoff).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print only the verdicts.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Run { files, seed, quiet }) => {
            ExitCode::from(run::run_files(&files, seed, quiet))
        }
        None => {
            println!(
                "Sync Lab {}: the GUI is not built yet. Today you can run scenarios headless:\n  \
                 cargo run -p app -- run assets/scenarios/*.scn",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
    }
}
