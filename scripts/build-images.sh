#!/usr/bin/env bash
# Builds the platform's small edge binaries as fully static binaries (glibc, +crt-static) and
# their FROM-scratch images with Podman: localhost/op-sample-app:latest (the sample app),
# localhost/op-counter:latest (the stateful sample app whose per-device counters follow their
# devices on relocation, MEC 021 with prior notice) and localhost/op-probe:latest (the
# connectivity probe every cloudlet runs) and localhost/op-egress:latest (the egress gateway of
# clusters whose outbound traffic is let out selectively). Nothing is pulled.
# Idempotent: unchanged sources give the same binaries and the same images. Prints the image
# ids on stdout; progress goes to stderr.
#
# The binary is built under "${CARGO_TARGET_DIR:-<repo>/target}/static", apart from the normal
# builds, so its RUSTFLAGS never invalidate them.
set -euo pipefail

# A relative CARGO_TARGET_DIR is relative to the caller's directory, as cargo sees it.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in
    /*) target=$CARGO_TARGET_DIR ;;
    *) target=$PWD/$CARGO_TARGET_DIR ;;
  esac
fi
cd "$(dirname "$0")/.."
root=$PWD
target=${target:-$root/target}
triple=x86_64-unknown-linux-gnu

# The API service runs as root; a rootless build would land in another image store.
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# The sample app's image carries a static BusyBox (Debian's busybox-static), so terminal
# access (`opctl instance exec`) has a shell to run, as most real images do.
if [ ! -x /bin/busybox ] || ! ldd /bin/busybox 2>&1 | grep -q 'not a dynamic executable\|statically linked'; then
  echo "==> installing busybox-static" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq busybox-static >/dev/null
fi

echo "==> building op-sample-app, op-counter, op-probe and op-egress (static, $triple)" >&2
RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release -p op-sample-app --bins \
  --target "$triple" --target-dir "$target/static"

for name in op-sample-app op-counter op-probe op-egress; do
  bin="$target/static/$triple/release/$name"

  # FROM scratch has no libc: the binary must not be dynamic.
  if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q 'statically linked'; then
    echo "$bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
  fi

  # Smoke test: it starts and listens (PORT=0: any free port).
  log=$(mktemp)
  PORT=0 "$bin" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do
    grep -q listening "$log" && break
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if ! grep -q listening "$log"; then
  echo "$bin did not start:" >&2
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"

image=localhost/$name:latest
echo "==> building $image" >&2
ctx=$(mktemp -d)
cp "$bin" "$ctx/app"
printf 'FROM scratch\nCOPY app /%s\n' "$name" > "$ctx/Containerfile"
if [ "$name" = op-sample-app ]; then
  mkdir -p "$ctx/bin"
  cp /bin/busybox "$ctx/bin/busybox"
  for applet in sh ls cat echo env ps id hostname wc head tail sleep kill uname df free mkdir rm printf grep; do
    ln -s busybox "$ctx/bin/$applet"
  done
  printf 'COPY bin /bin\n' >> "$ctx/Containerfile"
fi
# The egress gateway serves proxy requests on 3128; the others on 8080.
port=8080
[ "$name" = op-egress ] && port=3128
printf 'EXPOSE %s\nENTRYPOINT ["/%s"]\n' "$port" "$name" >> "$ctx/Containerfile"
$SUDO podman build -q --layers -f "$ctx/Containerfile" -t "$image" "$ctx" >/dev/null
rm -rf "$ctx"
$SUDO podman image inspect --format '{{.Id}}' "$image"
done
