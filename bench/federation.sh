#!/usr/bin/env bash
# Federation: deploy-to-first-response of the sample app on a partner's zone (operator A's
# developer, through A's CAMARA API, over the GSMA EWBI with TLS and OAuth2 to operator B, whose
# own admission runs it on B's edge and whose ingress serves it) against the same on A's own
# zone, N samples each, interleaved, in one run with two real opd processes.
# Last line: RESULT federated_deploy_ratio=<x> federated_p50_ms=<x> local_p50_ms=<x> first_federated_ms=<x>
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
scripts/setup-runtime.sh >/dev/null
scripts/build-images.sh >/dev/null
cargo build --release -q -p opd -p opctl -p op-bench
target/release/op-bench federation --n "$N"
