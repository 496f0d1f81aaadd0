#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: starts PostgreSQL itself
# (installing it if needed), then formats, lints and tests every crate. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL for the storage and server suites (sets DAAS_TEST_POSTGRES_URL), Redis for the
# replay-store suite of crates/resource (sets DAAS_TEST_REDIS_URL), and the Python JOSE peers of
# the token interop tests (sets DAAS_TEST_PYTHON).
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh --redis --python

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
