#!/usr/bin/env bash
# Runs every test: unit tests, the store suite, driver tests on real Podman, and the end-to-end
# tests that drive the real opd and opctl binaries. Installs and starts what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-runtime.sh
scripts/build-images.sh >/dev/null
echo "==> building"
cargo build -q --workspace --bins
echo "==> checking that openapi.json matches the code"
target/debug/opd openapi > target/openapi.generated.json
if ! diff -q openapi.json target/openapi.generated.json >/dev/null; then
  echo "openapi.json is stale: run 'cargo run -q -p opd -- openapi > openapi.json' and commit it" >&2
  exit 1
fi
echo "==> tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
