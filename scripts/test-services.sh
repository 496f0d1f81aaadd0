#!/usr/bin/env bash
# Make the services the test suites need available on this machine (clean Debian, run as root).
#
#   scripts/test-services.sh            # PostgreSQL; prints `export DAAS_TEST_POSTGRES_URL=...`
#   scripts/test-services.sh --redis    # also Redis; prints `export DAAS_TEST_REDIS_URL=...`
#   scripts/test-services.sh --python   # also a venv with the interop peers (jwcrypto, PyJWT);
#                                       # prints `export DAAS_TEST_PYTHON=...`
#   source scripts/test-services.sh     # same, but sets the variables in the calling shell
#   eval "$(scripts/test-services.sh)"  # equivalent
#
# Idempotent, quiet on success (only the export lines go to stdout), and fast when the services
# already run. Installs `postgresql` / `redis-server` with apt only when missing, and runs
# `apt-get update` only when the package lists do not know the package yet. On failure the
# captured output of the failing step goes to stderr.
#
# The role `daas` (password `daas`, CREATEDB) is a test-only credential for a cluster listening
# on loopback; never use this script to provision a real deployment.

_daas_services() (
    set -euo pipefail

    local want_redis=0 want_python=0 arg
    for arg in "$@"; do
        case "$arg" in
            --redis) want_redis=1 ;;
            --python) want_python=1 ;;
            -h | --help)
                sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
                return 0
                ;;
            *)
                echo "test-services: unknown argument: $arg" >&2
                return 2
                ;;
        esac
    done

    local log
    log="$(mktemp -t daas-test-services.XXXXXX)"
    # shellcheck disable=SC2064 # expand now: the trap must remove this very file
    trap "rm -f '$log'" EXIT

    # Run a step with its output captured; show it only if the step fails.
    quiet() {
        if ! "$@" >"$log" 2>&1; then
            echo "test-services: failed: $*" >&2
            cat "$log" >&2
            return 1
        fi
    }

    apt_install() { # PACKAGE
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-cache show "$1" >/dev/null 2>&1; then
            quiet apt-get update
        fi
        quiet apt-get install -y --no-install-recommends "$1"
    }

    as_postgres() {
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    }

    wait_for() { # SECONDS CMD...
        local deadline=$((SECONDS + $1))
        shift
        until "$@" >/dev/null 2>&1; do
            if ((SECONDS >= deadline)); then
                echo "test-services: timed out waiting for: $*" >&2
                return 1
            fi
            sleep 0.2
        done
    }

    # ---------------------------------------------------------------- PostgreSQL
    local pg_host=127.0.0.1 pg_port=5432
    if ! pg_isready -q -h "$pg_host" -p "$pg_port" >/dev/null 2>&1; then
        if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
            apt_install postgresql
        fi
        # Prefer 15 (Debian 12), else the newest installed major version.
        local ver
        if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then
            ver=15
        else
            ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n1)"
        fi
        if [[ ! -d "/etc/postgresql/$ver/main" ]]; then
            quiet pg_createcluster "$ver" main --port "$pg_port"
        fi
        # `start` fails when the cluster is already up but not yet accepting connections.
        if ! pg_lsclusters -h "$ver" main 2>/dev/null | grep -q ' online'; then
            quiet pg_ctlcluster "$ver" main start
        fi
        wait_for 30 pg_isready -q -h "$pg_host" -p "$pg_port"
    fi

    local has_role
    has_role="$(as_postgres psql -h /var/run/postgresql -p "$pg_port" -XAtqc \
        "SELECT 1 FROM pg_roles WHERE rolname = 'daas'" 2>"$log")" || {
        echo "test-services: cannot query PostgreSQL as postgres" >&2
        cat "$log" >&2
        return 1
    }
    if [[ "$has_role" != 1 ]]; then
        quiet as_postgres psql -h /var/run/postgresql -p "$pg_port" -XAtq -v ON_ERROR_STOP=1 -c \
            "CREATE ROLE daas LOGIN PASSWORD 'daas' CREATEDB"
    fi
    echo "export DAAS_TEST_POSTGRES_URL=postgres://daas:daas@${pg_host}:${pg_port}/postgres"

    # ---------------------------------------------------------------- curl
    # The README's token tour calls the protected sample service with curl, as a user would.
    if ! command -v curl >/dev/null 2>&1; then
        apt_install curl
    fi

    # ---------------------------------------------------------------- Redis
    if ((want_redis)); then
        if ! { command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }; then
            if ! command -v redis-server >/dev/null 2>&1; then
                apt_install redis-server
            fi
            # Ephemeral state only: no RDB snapshots, no AOF.
            quiet redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no
            wait_for 15 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
        fi
        echo "export DAAS_TEST_REDIS_URL=redis://127.0.0.1:6379"
    fi

    # ---------------------------------------------------------------- Python interop peers
    if ((want_python)); then
        # A private venv (Debian's system Python refuses pip installs, PEP 668), reused when
        # it already has the packages.
        local venv="${DAAS_TEST_VENV:-${TMPDIR:-/tmp}/daas-test-venv}"
        if ! "$venv/bin/python" -c 'import jwcrypto, jwt' >/dev/null 2>&1; then
            if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
                apt_install python3-venv
            fi
            quiet python3 -m venv "$venv"
            quiet "$venv/bin/pip" install --quiet jwcrypto pyjwt
        fi
        echo "export DAAS_TEST_PYTHON=$venv/bin/python"
    fi
)

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: do the work in a subshell (so `set -euo pipefail` does not leak into the caller)
    # and apply the export lines here.
    if _daas_exports="$(_daas_services "$@")"; then
        eval "$_daas_exports"
        unset _daas_exports
        unset -f _daas_services
    else
        unset _daas_exports
        unset -f _daas_services
        return 1
    fi
else
    set -euo pipefail
    _daas_services "$@"
fi
