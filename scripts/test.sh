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
# The completion tests drive real bash, zsh and fish.
missing=""
for sh in zsh fish; do command -v "$sh" >/dev/null 2>&1 || missing="$missing $sh"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "scripts/test.sh: the completion tests need:$missing (install them with your package manager)" >&2
    exit 1
  fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pytest -q "$@"
