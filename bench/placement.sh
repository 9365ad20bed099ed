#!/usr/bin/env bash
# Placement, part (a): minimum-cover problems on a synthetic operator of 1,000 zones and 20,000
# cells (footprints of 50 to 300 km, latency bounds of 1.4 to 2.6 ms). Each
# cover from the platform's solver (default limits) is compared with the exact optimum wherever
# the exact solver finishes (components of up to 300 candidates after reduction), and timed.
# Part (b), single-instance decisions per second, is not measured yet (issue 4 is open).
# Last line: RESULT cover_gap_pct=<mean % above the optimum> cover_ms=<mean per cover> compared=<n>
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p op-bench
exec target/release/op-bench placement --zones "${ZONES:-1000}" --cells "${CELLS:-20000}" --problems "${PROBLEMS:-40}"
