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

# The UI snapshot tests render with wgpu on the CPU: Mesa's lavapipe Vulkan driver, so every
# machine draws the same pixels.
if ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
  echo "== installing mesa-vulkan-drivers (lavapipe) for the UI snapshot tests"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q mesa-vulkan-drivers
fi
export WGPU_BACKEND=vulkan          # a missing driver fails loudly, not on another backend
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export XDG_RUNTIME_DIR

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo doc (the crate docs' links must resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

echo "== cargo test"
cargo test --workspace
