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

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$port"
target/release/opd serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >/dev/null 2>"$dir/opd.log" &
opd_pid=$!
trap 'kill $opd_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fsS "$api/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
pw=$(cut -d: -f2 "$dir/data/admin-credential")
admin=$(curl -fsS "$api/op/v1/auth/token" -H 'content-type: application/json' -d "{\"username\":\"admin\",\"password\":\"$pw\"}" | j "['access_token']")
H=(-H "authorization: Bearer $admin" -H 'content-type: application/json')
curl -fsS "${H[@]}" "$api/op/v1/organizations" -d '{"name":"bench_org","spec":{}}' >/dev/null
curl -fsS "${H[@]}" "$api/op/v1/users" -d '{"name":"bencher","organization":"bench_org","role":"Manager","password":"bench-password-1"}' >/dev/null
dev=$(curl -fsS "$api/op/v1/auth/token" -H 'content-type: application/json' -d '{"username":"bencher","password":"bench-password-1"}' | j "['access_token']")
D=(-H "authorization: Bearer $dev" -H 'content-type: application/json')
app=$(curl -fsS "${D[@]}" "$api/edge-application-management/v0.1alpha1/apps" -d '{"name":"bench_app","version":"1","appProvider":"bench_org","packageType":"CONTAINER","flavor":"small",
  "appRepo":{"type":"PUBLICREPO","imagePath":"localhost/op-sample-app:latest"},
  "requiredResources":{"infraKind":"container","numCPU":"1","memory":256},
  "componentSpec":[{"componentName":"web","networkInterfaces":[{"interfaceId":"http","protocol":"TCP","port":8080,"visibilityType":"VISIBILITY_EXTERNAL"}]}]}' | j "['appId']")
zone=$(curl -fsS "${D[@]}" "$api/edge-application-management/v0.1alpha1/edge-cloud-zones" | j "[0]['edgeCloudZoneId']")

target/release/op-bench deploy --api "$api" --token "$dev" --app "$app" --zone "$zone" --n "$N"
