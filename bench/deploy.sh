#!/usr/bin/env bash
# Deploy latency: from the NBI create call to the instance's first HTTP 200, against the same
# image started directly through the runtime's API and polled the same way; 20 samples each,
# interleaved, in one run. Last line: RESULT deploy_p50_ratio=... deploy_p95_ratio=... direct_p50_ms=... op_p50_ms=...
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
scripts/setup-runtime.sh >/dev/null
cargo build --release -q -p opd -p op-bench
scripts/build-images.sh >/dev/null

. bench/platform.sh
app=$(sample_app bench_app)
zone=$(curl -fsS "${D[@]}" "$api/edge-application-management/v0.1alpha1/edge-cloud-zones" | j "[0]['edgeCloudZoneId']")

target/release/op-bench deploy --api "$api" --token "$dev" --app "$app" --zone "$zone" --n "$N"
