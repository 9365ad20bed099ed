#!/usr/bin/env bash
# Serverless, in one run: (a) cold start, the first answer through a point of presence with
# zero instances, against the same container started directly through the runtime API and
# polled (N samples each, interleaved); (b) warm path, latency p50/p99 of sequential requests
# on a kept-alive connection and throughput (wrk, 16 connections) through the ingress against
# straight to the instance. Where the kernel allows it the ingress joins a routed connection to
# its instance in the kernel (crates/ingress/src/splice.rs) and opens its upstream connection
# inside the instance's network namespace (crates/ingress/src/netns.rs); the line before the
# last says how many connections it joined and how many it opened that way.
# Last line: RESULT cold_ratio=<x> warm_p50_overhead_us=<x> warm_p99_overhead_us=<x> rps_ratio=<x>
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
REQUESTS=${REQUESTS:-5000}
scripts/setup-runtime.sh >/dev/null
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); }
cargo build --release -q -p opd -p op-bench
scripts/build-images.sh >/dev/null

. bench/platform.sh
app=$(sample_app bench_fn '{"instantiation":"serverless","serverless":{"idleSeconds":1,"maxInstances":1}}')
host=$(curl -fsS "${D[@]}" "$api/op/v1/apps/$app/serverless" | j "['host']")
pop=""
for _ in $(seq 1 100); do
  pop=$(curl -fsS "${D[@]}" "$api/op/v1/serverless/pops" | python3 -c "import json,sys; p=json.load(sys.stdin); print(p[0]['http'] if p else '')")
  [ -n "$pop" ] && break; sleep 0.1
done

line=$(target/release/op-bench serverless --api "$api" --token "$dev" --app "$app" --pop "$pop" --host "$host" --n "$N" --requests "$REQUESTS")
echo "$line"
straight=$(echo "$line" | sed 's/.*straight=//')
# Throughput: keep the instance warm with a held connection while wrk runs both ways.
exec 3<>"/dev/tcp/${pop%:*}/${pop#*:}"
printf 'GET / HTTP/1.1\r\nHost: %s\r\n\r\n' "$host" >&3
rps() { wrk -t2 -c16 -d5s -H "Host: $host" "http://$1/" | awk '/Requests\/sec/ {print $2}'; }
rps "$pop" >/dev/null  # warm-up
# Alternated, three times each: on two cores one run can differ from the next by half.
d=(); v=()
for _ in 1 2 3; do d+=("$(rps "$straight")"); v+=("$(rps "$pop")"); done
exec 3>&-
sum() { local IFS=+; python3 -c "print($*)"; }
ratio=$(python3 -c "print(f'{$(sum "${v[@]}")/($(sum "${d[@]}")):.3f}')")
echo "rps direct=$(IFS=,; echo "${d[*]}") via_ingress=$(IFS=,; echo "${v[*]}")"
get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
metric() { curl -fsS "${H[@]}" "$api/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
echo "kernel_spliced=$(metric op_serverless_kernel_spliced_total) entered=$(metric op_serverless_entered_total)"
echo "RESULT cold_ratio=$(get cold_ratio) warm_p50_overhead_us=$(get warm_p50_overhead_us) warm_p99_overhead_us=$(get warm_p99_overhead_us) rps_ratio=$ratio"
