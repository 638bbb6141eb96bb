#!/usr/bin/env bash
# The project's whole test suite: what CI runs (.ci/run) and what a new user runs.
# It installs what it needs on a fresh Debian machine, then checks formatting, lints and
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not installed; install Rust with rustup first" >&2
  exit 2
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace
