#!/usr/bin/env bash
# Installs modelctl with its test dependencies into .venv and runs the test suite.
# Downloads (test models, llama.cpp's source archive) are cached in
# ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}, outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
