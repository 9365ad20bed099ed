#!/usr/bin/env bash
# Scale: one region on a three-member etcd cluster (Debian's etcd) with 10,000 simulated
# cloudlets in 100 zones; 100,000 app instances created through the API by 32 concurrent clients
# while a device asks for its edge (UNI discovery, at opd's --uni-listen address, from a thread
# of its own in short scheduling turns, as from a machine of its own). Measures the API's create
# latency p99, the time until every instance is Ready, opd's peak resident memory, and
# discovery p99 during the churn. Smaller runs: CLOUDLETS=1000 INSTANCES=10000 bench/scale.sh
# Last line: RESULT instances=<n> create_p99_ms=<x> converge_s=<x> rss_mb=<x> discovery_p99_ms=<x>
set -euo pipefail
cd "$(dirname "$0")/.."
CLOUDLETS=${CLOUDLETS:-10000} ZONES=${ZONES:-100} INSTANCES=${INSTANCES:-100000} CONCURRENCY=${CONCURRENCY:-32}
scripts/setup-runtime.sh >/dev/null
cargo build --release -q -p opd -p op-bench
target/release/op-bench scale --opd target/release/opd --cloudlets "$CLOUDLETS" --zones "$ZONES" \
  --instances "$INSTANCES" --concurrency "$CONCURRENCY"
