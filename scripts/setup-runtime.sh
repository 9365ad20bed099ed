#!/usr/bin/env bash
# Installs and starts what the platform needs on this machine: Podman with runc, serving the
# Docker Engine API on /run/podman/podman.sock, the registry program `opd --registry-listen`
# runs (Debian's docker-registry) with Podman allowed to pull from it over plain HTTP on
# loopback, Chromium and its WebDriver for the console's tests, and PostgreSQL for the
# `postgresql` platform service (scripts/setup-postgres.sh), and etcd with protoc for the
# distributed store.
# Idempotent: safe to run again at any time.
set -euo pipefail

SOCK=${OP_PODMAN_SOCK:-/run/podman/podman.sock}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Network namespaces for the ingress's tests (`ip netns`).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# The web console's end-to-end tests drive a headless Chromium over WebDriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# etcd for the distributed store (the tests start their own three-member clusters), etcdctl,
# and protoc, which the etcd client's gRPC code is generated with at build time.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

conf=/etc/containers/containers.conf
want=$'[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'
if [ "$(cat "$conf" 2>/dev/null)" != "${want%$'\n'}" ]; then
  $SUDO mkdir -p /etc/containers
  printf '%s' "$want" | $SUDO tee "$conf" >/dev/null
fi

# The organizations' registry listens on loopback without TLS (127.0.0.1:5000 by default; tests
# use the next ports): Podman pulls from it only when told the registry is plain HTTP. Podman
# reads this when its service starts, so a change restarts the service (containers keep running).
regconf=/etc/containers/registries.conf.d/50-op-registry.conf
want_reg="# The Operator Platform's registry on loopback (plain HTTP). Written by scripts/setup-runtime.sh."
for port in $(seq 5000 5009); do
  want_reg+=$'\n[[registry]]\n'"location = \"127.0.0.1:$port\""$'\ninsecure = true'
done
if [ "$(cat "$regconf" 2>/dev/null)" != "$want_reg" ]; then
  $SUDO mkdir -p "$(dirname "$regconf")"
  printf '%s\n' "$want_reg" | $SUDO tee "$regconf" >/dev/null
  if curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
    echo "==> restarting the Podman API service to read $regconf"
    $SUDO pkill -f "podman system service --time=0 unix://$SOCK" || true
    for _ in $(seq 1 50); do
      curl -fsS --max-time 1 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 || break
      sleep 0.1
    done
  fi
fi

if ! curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
  echo "==> starting the Podman API service on $SOCK"
  $SUDO mkdir -p "$(dirname "$SOCK")"
  $SUDO rm -f "$SOCK"
  # From /, so the service (and the conmon processes it starts) never sits in a folder that may
  # be deleted later, such as a CI checkout.
  (cd / && exec nohup $SUDO podman system service --time=0 "unix://$SOCK" </dev/null >/tmp/podman-service.log 2>&1) &
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null || { echo "podman API did not come up; see /tmp/podman-service.log" >&2; exit 1; }
fi
echo "==> container runtime ready: unix://$SOCK"

# Podman's netavark sometimes leaves the port-forwarding (DNAT) rules of a removed container
# behind; a process that later listens on such a port of this host then has its loopback
# connections sent to a container that is gone (they hang or are refused). Drop the rules of
# containers that no longer exist.
if command -v iptables >/dev/null 2>&1; then
  live=$($SUDO podman ps -a --no-trunc -q)
  for id in $($SUDO iptables -t nat -S 2>/dev/null | grep -o 'podman id: [0-9a-f]\{64\}' | awk '{print $3}' | sort -u); do
    grep -q "$id" <<<"$live" && continue
    $SUDO iptables -t nat -S | grep -- "id: $id" | sed 's/^-A /-D /' | while read -r rule; do eval "$SUDO iptables -t nat $rule"; done
    echo "==> dropped the port-forwarding rules left by removed container ${id:0:12}"
  done
fi

bash "$(dirname "$0")/setup-postgres.sh"
