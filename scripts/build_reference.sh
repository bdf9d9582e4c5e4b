#!/usr/bin/env bash
# Builds the reference engine, llama.cpp through llama-cpp-python 0.3.36, for one instruction set, into a wheel
# in the test cache and installs it with gguf and numpy into a separate venv:
#     ISA=avx512 (default)  ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}/refvenv/bin/python
#     ISA=avx2              ${MODELCTL_TEST_CACHE:-~/.cache/modelctl-tests}/refvenv-avx2/bin/python
#     ISA=avxvnni           .../refvenv-avxvnni/bin/python   (AVX2 + the VEX-encoded AVX-VNNI dot product)
# It is never a runtime dependency of modelctl and CI never builds it: scripts/make_golden_*.py use it to
# write small golden files that are committed, and `modelctl bench` / bench/variants.py compare against it.
#
# Flags: portable builds (-DGGML_NATIVE=OFF) with exactly the instruction sets named, AMX off (its path
# crashes here).  avx512 is AVX-512 F/BW/VBMI/VNNI/BF16 without the VEX AVX-VNNI encoding, which AMD Zen 4
# lacks (-DGGML_AVX_VNNI=ON dies with SIGILL there).  The llava library is not built.  ~10-20 min on 2 cores.
set -euo pipefail
CACHE="${MODELCTL_TEST_CACHE:-$HOME/.cache/modelctl-tests}"
VERSION=0.3.36
ISA="${ISA:-avx512}"
common="-DGGML_NATIVE=OFF -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_AMX_TILE=OFF \
-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
case "$ISA" in
    avx512)  flags="-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AVX_VNNI=OFF"; venv="$CACHE/refvenv" ;;
    avx2)    flags="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
-DGGML_AVX_VNNI=OFF"; venv="$CACHE/refvenv-avx2" ;;
    avxvnni) flags="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
-DGGML_AVX_VNNI=ON"; venv="$CACHE/refvenv-avxvnni" ;;
    *) echo "build_reference.sh: ISA must be avx512, avx2 or avxvnni, not '$ISA'" >&2; exit 2 ;;
esac
export CMAKE_ARGS="$common $flags"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

built="$CACHE/built-$ISA"
mkdir -p "$CACHE/sdist" "$built"
sdist="$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
    python3 -m pip download --no-deps --no-binary :all: -d "$CACHE/sdist" "llama-cpp-python==$VERSION"
fi
wheel=$(ls "$built"/llama_cpp_python-$VERSION-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ] || [ "${REBUILD:-0}" = 1 ]; then
    rm -f "$built"/llama_cpp_python-*.whl
    python3 -m pip wheel --no-deps -w "$built" "$sdist"
    wheel=$(ls "$built"/llama_cpp_python-$VERSION-*.whl | head -1)
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -m pip install --quiet "$wheel" gguf numpy
"$venv/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, '($ISA) ready in $venv')"
