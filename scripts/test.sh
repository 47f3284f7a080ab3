#!/usr/bin/env bash
# Installs what the tests need (run as root on a fresh Debian machine) and runs
# every check: format, lints, unit, property, CLI and end-to-end tests.
# The end-to-end tests build network namespaces and iptables rules: they need
# root, and under CI=true they fail (never skip) without it.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  iptables iproute2 curl openssl ca-certificates haproxy >/dev/null
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi

if [ -f tests/sdk/requirements.txt ]; then
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check \
    -r tests/sdk/requirements.txt
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
cargo test --workspace --locked
# The load harness's smoke mode: its namespaces, servers, HAProxy and proxy
# set-up and tear-down, in seconds (figures come from `cargo bench --bench load`).
cargo test --locked --bench load

if [ -d tests/sdk ]; then
  python3 -m pytest -q tests/sdk
fi
