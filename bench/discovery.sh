#!/usr/bin/env bash
# UNI discovery throughput and latency: a synthetic operator of 5,000 zones, 50,000 app instances
# and 1,000,000 registered devices (one session token each); discovery requests with valid
# tokens and random cells, against a minimal HTTP server on the same stack answering a fixed body
# of the same size, in the same run. p99 is measured open-loop at half the measured maximum rate.
# Last line: RESULT discovery_rps=... baseline_rps=... rps_ratio=... p99_ms=...
set -euo pipefail
cd "$(dirname "$0")/.."
ZONES=${ZONES:-5000} INSTANCES=${INSTANCES:-50000} DEVICES=${DEVICES:-1000000} SECS=${SECS:-10}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p opd -p op-bench

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "seeding $ZONES zones, $INSTANCES instances, $DEVICES devices" >&2
target/release/op-bench seed-uni --data-dir "$work/data" --out-dir "$work" --zones "$ZONES" --instances "$INSTANCES" --devices "$DEVICES"

port=$(free_port)
target/release/opd serve --data-dir "$work/data" --listen "127.0.0.1:$port" --no-controllers --no-default-cloudlet \
  --uni-rps 10000000 --device-rps 1000000 >/dev/null 2>"$work/opd.log" &
pids+=($!)
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

token=$(head -1 "$work/tokens.txt")
sample=$(curl -fsS "http://127.0.0.1:$port/uni/v1/discover" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"location\":{\"cellId\":\"$(head -1 "$work/cells.txt")\"}}")
bytes=${#sample}
bport=$(free_port)
target/release/op-bench baseline --listen "127.0.0.1:$bport" --body-bytes "$bytes" &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS -X POST "http://127.0.0.1:$bport/" >/dev/null 2>&1 && break; sleep 0.1; done

rps() { TOKENS="$work/tokens.txt" CELLS="$work/cells.txt" wrk -t2 -c64 -d"${SECS}s" -s bench/discovery.lua "$1" | tee -a "$work/wrk.log" | awk '/Requests\/sec/ {print $2}'; }
echo "warming up" >&2
rps "http://127.0.0.1:$port" >/dev/null
disc=$(rps "http://127.0.0.1:$port")
base=$(rps "http://127.0.0.1:$bport")
grep -E "Non-2xx|Socket errors" "$work/wrk.log" >&2 || true
half=$(python3 -c "print(max(1.0, $disc / 2))")
lat=$(target/release/op-bench latency --url "http://127.0.0.1:$port/uni/v1/discover" --rate "$half" --secs "$SECS" \
  --tokens "$work/tokens.txt" --cells "$work/cells.txt")
echo "open loop at $half req/s: $lat (response $bytes bytes)" >&2
p99=$(echo "$lat" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
ratio=$(python3 -c "print(f'{$disc / $base:.3f}')")
echo "RESULT discovery_rps=$disc baseline_rps=$base rps_ratio=$ratio p99_ms=$p99"
