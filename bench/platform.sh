# Shared by the benchmarks: starts a release opd on a fresh data directory and makes a
# developer of organization bench_org. Sets dir, api, admin, H (admin curl headers), dev and D
# (developer curl headers); the platform stops and the directory goes on exit. `sample_app NAME
# [REQUIREMENTS]` onboards the sample app (one CPU, 256 MB, HTTP on 8080) and prints its id.
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api="http://127.0.0.1:$port"
# The containers the platform starts outlive it (instances are durable): those it started are
# removed on exit, so that runs do not pile up.
managed() { podman ps -aq --filter label=op.managed=true 2>/dev/null | sort; }
before=$(managed)
target/release/opd serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >/dev/null 2>"$dir/opd.log" &
opd_pid=$!
trap 'kill $opd_pid 2>/dev/null || true; wait $opd_pid 2>/dev/null; comm -13 <(echo "$before") <(managed) | xargs -r podman rm -f >/dev/null 2>&1; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fsS "$api/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

j() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
pw=$(cut -d: -f2 "$dir/data/admin-credential")
admin=$(curl -fsS "$api/op/v1/auth/token" -H 'content-type: application/json' -d "{\"username\":\"admin\",\"password\":\"$pw\"}" | j "['access_token']")
H=(-H "authorization: Bearer $admin" -H 'content-type: application/json')
curl -fsS "${H[@]}" "$api/op/v1/organizations" -d '{"name":"bench_org","spec":{}}' >/dev/null
curl -fsS "${H[@]}" "$api/op/v1/users" -d '{"name":"bencher","organization":"bench_org","role":"Manager","password":"bench-password-1"}' >/dev/null
dev=$(curl -fsS "$api/op/v1/auth/token" -H 'content-type: application/json' -d '{"username":"bencher","password":"bench-password-1"}' | j "['access_token']")
D=(-H "authorization: Bearer $dev" -H 'content-type: application/json')

sample_app() {
  curl -fsS "${D[@]}" "$api/edge-application-management/v0.1alpha1/apps" -d '{"name":"'"$1"'","version":"1","appProvider":"bench_org","packageType":"CONTAINER","flavor":"small",
    "appRepo":{"type":"PUBLICREPO","imagePath":"localhost/op-sample-app:latest"},
    "requiredResources":{"infraKind":"container","numCPU":"1","memory":256},
    "requirements":'"${2:-{\}}"',
    "componentSpec":[{"componentName":"web","networkInterfaces":[{"interfaceId":"http","protocol":"TCP","port":8080,"visibilityType":"VISIBILITY_EXTERNAL"}]}]}' | j "['appId']"
}
