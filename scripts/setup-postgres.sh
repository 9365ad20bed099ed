#!/usr/bin/env bash
# Installs and starts the PostgreSQL server behind the `postgresql` platform service on this
# machine (Debian's `postgresql` package), for the quickstart and the tests:
#   - cluster `main` of the newest installed version, listening on 127.0.0.1 and on the Podman
#     bridge's gateway (app containers run on Podman's default bridge and reach the host there),
#     with scram-sha-256 logins from loopback and from the bridge's subnet only;
#   - an admin role `op_admin` (LOGIN CREATEDB CREATEROLE, nothing more) whose URL,
#     postgres://op_admin:<password>@127.0.0.1:<port>/postgres, is written to
#     $OP_STATE_DIR/pg-admin-url (default /var/lib/op/pg-admin-url, mode 0600): what an operator
#     gives as a platform service's adminUrl;
#   - the address containers reach the server at, in $OP_STATE_DIR/pg-instance-host: the
#     service's `host`.
# Idempotent: safe to run again at any time (the password is kept, the server restarted only
# when its listen addresses changed). Called by scripts/setup-runtime.sh, after Podman.
set -euo pipefail

STATE=${OP_STATE_DIR:-/var/lib/op}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "==> installing postgresql"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
  echo "==> creating PostgreSQL $ver cluster main"
  $SUDO pg_createcluster "$ver" main >/dev/null
fi
conf=/etc/postgresql/$ver/main
port=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" { print $3 }')

# Podman's default bridge: its gateway is the host as containers see it.
read -r gateway subnet < <($SUDO podman network inspect podman --format '{{range .Subnets}}{{.Gateway}} {{.Subnet}}{{"\n"}}{{end}}' | grep -m1 '\.')
[ -n "${gateway:-}" ] && [ -n "${subnet:-}" ] || { echo "cannot find the gateway of Podman's network 'podman'" >&2; exit 1; }

# The bridge (and so its gateway address) exists only while a container runs on it: let the
# server bind that address before it is up.
listen="127.0.0.1,$gateway"
if ! ip -o addr show 2>/dev/null | grep -q " $gateway/" && [ "$(cat /proc/sys/net/ipv4/ip_nonlocal_bind 2>/dev/null)" != 1 ]; then
  if ! $SUDO sysctl -q -w net.ipv4.ip_nonlocal_bind=1 >/dev/null 2>&1; then
    # Cannot bind an address not yet up: listen everywhere; pg_hba still admits only loopback
    # and the bridge.
    listen="*"
  fi
fi

want_conf="# Written by scripts/setup-postgres.sh (Operator Platform).
listen_addresses = '$listen'
password_encryption = scram-sha-256"
changed_conf=0
if [ "$($SUDO cat "$conf/conf.d/op-platform.conf" 2>/dev/null)" != "$want_conf" ]; then
  printf '%s\n' "$want_conf" | $SUDO tee "$conf/conf.d/op-platform.conf" >/dev/null
  changed_conf=1
fi
changed_hba=0
for line in "host all all 127.0.0.1/32 scram-sha-256" "host all all $subnet scram-sha-256"; do
  if ! $SUDO grep -qxF "$line" "$conf/pg_hba.conf"; then
    printf '%s\n' "$line" | $SUDO tee -a "$conf/pg_hba.conf" >/dev/null
    changed_hba=1
  fi
done

if pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" && $4 == "online" { found = 1 } END { exit !found }'; then
  if [ "$changed_conf" = 1 ]; then
    echo "==> restarting PostgreSQL $ver (listen addresses)"
    $SUDO pg_ctlcluster "$ver" main restart
  elif [ "$changed_hba" = 1 ]; then
    $SUDO pg_ctlcluster "$ver" main reload
  fi
else
  echo "==> starting PostgreSQL $ver on 127.0.0.1:$port and $gateway:$port"
  $SUDO pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "PostgreSQL did not come up; see /var/log/postgresql/postgresql-$ver-main.log" >&2; exit 1; }

# The admin role: the password is made once and kept in the URL file.
$SUDO mkdir -p "$STATE"
url_file=$STATE/pg-admin-url
password=$({ $SUDO cat "$url_file" 2>/dev/null || true; } | sed -n 's|^postgres://op_admin:\([0-9a-f]\{32\}\)@.*|\1|p')
[ -n "$password" ] || password=$(openssl rand -hex 16)
# Through stdin, so the password shows in no process list.
as_postgres psql -q -v ON_ERROR_STOP=1 -p "$port" -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'op_admin') THEN CREATE ROLE op_admin; END IF;
END \$\$;
ALTER ROLE op_admin WITH LOGIN CREATEDB CREATEROLE PASSWORD '$password';
SQL
url="postgres://op_admin:$password@127.0.0.1:$port/postgres"
if [ "$($SUDO cat "$url_file" 2>/dev/null)" != "$url" ]; then
  (umask 077 && printf '%s\n' "$url" | $SUDO tee "$url_file.tmp" >/dev/null)
  $SUDO chmod 600 "$url_file.tmp"
  $SUDO mv "$url_file.tmp" "$url_file"
fi
if [ "$($SUDO cat "$STATE/pg-instance-host" 2>/dev/null)" != "$gateway" ]; then
  printf '%s\n' "$gateway" | $SUDO tee "$STATE/pg-instance-host" >/dev/null
fi

PGPASSWORD=$password psql -qAt -h 127.0.0.1 -p "$port" -U op_admin -d postgres -c 'SELECT 1' >/dev/null \
  || { echo "op_admin cannot log in over TCP" >&2; exit 1; }
echo "==> PostgreSQL ready: admin URL in $url_file, instances reach it at $gateway:$port"
