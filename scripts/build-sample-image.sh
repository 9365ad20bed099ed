#!/usr/bin/env bash
# Builds the sample app as a static binary and the FROM-scratch image
# localhost/op-sample-app:latest with Podman. Nothing is pulled. Idempotent; prints the image id.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release -p op-sample-app \
  --target x86_64-unknown-linux-gnu --target-dir "$target/static"
bin="$target/static/x86_64-unknown-linux-gnu/release/op-sample-app"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/op-sample-app"
cp crates/sample-app/Containerfile "$ctx/Containerfile"
podman build -q -t localhost/op-sample-app:latest "$ctx"
