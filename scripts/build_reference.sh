#!/usr/bin/env bash
# Builds the reference engine, llama.cpp through llama-cpp-python 0.3.36, into a wheel in the test cache and
# installs it with gguf and numpy into a separate venv:
#     ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}/built/llama_cpp_python-0.3.36-*.whl
#     ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}/refvenv/bin/python
# It is never a runtime dependency of modelctl and CI never builds it: scripts/make_golden_*.py use it to
# write small golden files that are committed, and `modelctl bench` compares against it when run from the refvenv.
#
# Flags: a portable build with the instruction sets this machine (AMD EPYC, Zen 4) really has. The native build
# crashes here (AMX tile instructions), and -DGGML_AVX_VNNI=ON dies with SIGILL ({vex} vpdpbusd: Zen 4 has the
# AVX-512 VNNI encoding, not the VEX one), so AVX_VNNI is OFF.  Takes ~15-25 minutes on 2 cores.
set -euo pipefail
CACHE="${MODELCTL_TEST_CACHE:-$HOME/.cache/modelctl-tests}"
VERSION=0.3.36
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON \
-DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=OFF -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
-DGGML_AMX_BF16=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

mkdir -p "$CACHE/sdist" "$CACHE/built"
sdist="$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
    python3 -m pip download --no-deps --no-binary :all: -d "$CACHE/sdist" \
        "llama-cpp-python==$VERSION"
fi
wheel=$(ls "$CACHE"/built/llama_cpp_python-$VERSION-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ] || [ "${REBUILD:-0}" = 1 ]; then
    rm -f "$CACHE"/built/llama_cpp_python-*.whl
    python3 -m pip wheel --no-deps -w "$CACHE/built" "$sdist"
    wheel=$(ls "$CACHE"/built/llama_cpp_python-$VERSION-*.whl | head -1)
fi
python3 -m venv "$CACHE/refvenv"
"$CACHE/refvenv/bin/python" -m pip install --quiet --upgrade --force-reinstall --no-deps "$wheel"
"$CACHE/refvenv/bin/python" -m pip install --quiet "$wheel" gguf numpy
"$CACHE/refvenv/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'ready in $CACHE/refvenv')"
