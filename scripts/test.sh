#!/usr/bin/env bash
# The whole test suite — what `.ci/run` runs. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard's browser test (host/cli/tests/cli_dashboard.rs) drives
# Debian's chromium through chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromedriver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver \
    || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }
fi

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== tests"
cargo test --workspace --locked
