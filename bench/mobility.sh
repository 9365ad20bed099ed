#!/usr/bin/env bash
# Mobility: a device sends steady requests (default 200/s) to its app while the network emulator
# moves it across the lab's 10 cells and 3 zones and back, for (a) a stateless app moving without
# notice and (b) the stateful counter app moving with prior notice (MEC 021), on real containers.
# Reports failed requests, the longest gap between successful answers, whether the counter's
# state survived every move, and the p99 time from trigger (the network's notification) to
# relocation decision over every relocation recorded.
# Last line: RESULT stateless_failed=... stateless_max_gap_ms=... stateful_failed=... stateful_max_gap_ms=... decision_p99_ms=... (then extras)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-runtime.sh >&2
bash scripts/build-images.sh >&2
cargo build --release -q -p opd -p op-netemu -p op-bench
target/release/op-bench mobility "$@"
