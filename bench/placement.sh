#!/usr/bin/env bash
# Placement on a synthetic operator of 1,000 zones, 10,000 cloudlets and 20,000 cells. First (a):
# minimum-cover problems (footprints of 50 to 300 km, latency bounds of 1.4 to 2.6 ms). Each
# cover from the platform's solver (default limits) is compared with the exact optimum wherever
# the exact solver (no size limit, in a child process) finishes within 20 s, and timed.
# Then (b): single-instance decisions (one instance of an app near a location, under its
# resource, flavor, service, geography, latency and mobility criteria) over 10,000 cloudlets, on
# one thread, for 3 s.
# Last line: RESULT cover_gap_pct=<mean % above the optimum> cover_ms=<mean per cover>
#            decisions_per_s=<x> compared=<covers compared with the optimum>
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p op-bench
exec target/release/op-bench placement --zones "${ZONES:-1000}" --cloudlets "${CLOUDLETS:-10000}" --cells "${CELLS:-20000}" --problems "${PROBLEMS:-40}"
