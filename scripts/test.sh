#!/usr/bin/env bash
# Installs modelctl with its test dependencies into .venv and runs the test suite.
# Downloads (test models, llama.cpp's source archive) are cached in
# ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}, outside the repo.
#
#   bash scripts/test.sh [PYTEST ARGS...]          the suite, reusing the cache
#   bash scripts/test.sh --cold [PYTEST ARGS...]   as on a new machine: a fresh venv, an empty test cache
#                                                  (a temporary folder, removed afterwards) and no pip cache,
#                                                  so every download and install step runs
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--cold" ]; then
    shift
    cold=$(mktemp -d "${TMPDIR:-/tmp}/modelctl-cold.XXXXXX")
    trap 'rm -rf "$cold"' EXIT
    export MODELCTL_TEST_CACHE="$cold/cache" PIP_NO_CACHE_DIR=1
    rm -rf .venv
    echo "scripts/test.sh: cold run, test cache $MODELCTL_TEST_CACHE (removed afterwards)" >&2
fi
# The completion tests drive real bash, zsh and fish; tests/test_simd_qemu.py cross-compiles the ARM
# kernels (static, against the arm64 libc) and runs them under qemu-aarch64.
missing=""
need() { command -v "$1" >/dev/null 2>&1 || [ -e "$1" ] || missing="$missing $2"; }   # a command or a file, its package
need zsh zsh
need fish fish
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need /usr/aarch64-linux-gnu/lib/libc.a libc6-dev-arm64-cross
need qemu-aarch64 qemu-user
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "scripts/test.sh: the tests need the packages:$missing (install them with your package manager)" >&2
    exit 1
  fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pytest -q "$@"
