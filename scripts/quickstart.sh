#!/usr/bin/env bash
# Sets up this machine, builds the platform, starts opd on its embedded default (data in
# .op-data, API on 127.0.0.1:7080), and runs its main job: the README's quickstart, which
# onboards the sample app, deploys it to the local zone and calls it over HTTP.
# opd keeps running afterwards; stop it with: kill "$(cat .op-data/opd.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-runtime.sh
echo "==> building"
cargo build --release -q -p opd -p opctl
scripts/build-images.sh >/dev/null

export OPD_DATA_DIR=${OPD_DATA_DIR:-$PWD/.op-data}
export OPCTL_SERVER=${OPCTL_SERVER:-http://127.0.0.1:7080}
export PATH="$PWD/target/release:$PATH"
mkdir -p "$OPD_DATA_DIR"

if ! curl -fsS --max-time 1 "$OPCTL_SERVER/readyz" >/dev/null 2>&1; then
  echo "==> starting opd (log: $OPD_DATA_DIR/opd.log)"
  nohup opd serve --data-dir "$OPD_DATA_DIR" --listen "${OPCTL_SERVER#http://}" --registry-listen "${OPD_REGISTRY_LISTEN:-127.0.0.1:5000}" >"$OPD_DATA_DIR/opd.out" 2>"$OPD_DATA_DIR/opd.log" &
  echo $! > "$OPD_DATA_DIR/opd.pid"
  for _ in $(seq 1 100); do curl -fsS --max-time 1 "$OPCTL_SERVER/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
fi
cat "$OPD_DATA_DIR/opd.out" 2>/dev/null || true

echo "==> running the quickstart"
block=$(scripts/readme-block.sh quickstart < README.md)
work=$(mktemp -d)
(cd "$work" && bash -euo pipefail -x -c "$block")
