#!/usr/bin/env bash
# Runs the test suite's kernel tests against the aarch64 build of the package, on an x86-64 Linux
# host, under qemu-aarch64: Debian arm64's python3.11 (downloaded with apt into a private state
# folder: the system's apt setup is not touched), aarch64 wheels of modelctl's dependencies and
# test dependencies, and modelctl's extensions (the Cython glue and every aarch64 variant of the
# kernels, with setup.py's flags) cross-compiled with gcc-aarch64-linux-gnu.  At import the
# package picks its variant from the emulated CPU (qemu's "max" CPU has the dot product: neon);
# the tests run once per variant it runs (conftest.kernel_variant), neon and generic.
#
#   bash scripts/arm64_tests.sh [PYTEST ARGS...]
#       default: tests/test_kernels.py tests/test_ops.py tests/test_variants.py
#
# Needs what scripts/test.sh installs (.venv with Cython; gcc-aarch64-linux-gnu, qemu-user).
# Downloads and builds are kept in ${MODELCTL_ARM64_DIR:-~/.cache/modelctl-tests/arm64}.  The
# emulated interpreter is $MODELCTL_ARM64_DIR/bin/python3 (a wrapper that is its own
# sys.executable, so the tests' subprocesses are emulated too).  tests/test_simd_qemu.py is the
# quick check that CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${MODELCTL_ARM64_DIR:-$HOME/.cache/modelctl-tests/arm64}
sysroot=$work/sysroot
for tool in aarch64-linux-gnu-gcc qemu-aarch64 apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "arm64_tests.sh: $tool is missing (scripts/test.sh installs it)" >&2; exit 1; }
done
[ -x .venv/bin/python ] || { echo "arm64_tests.sh: no .venv here: run scripts/test.sh first" >&2; exit 1; }

# 1. Debian arm64: python3.11, its headers, libgomp (download only, then unpacked)
if [ ! -x "$sysroot/usr/bin/python3.11" ]; then
  mkdir -p "$work/apt/state/lists/partial" "$work/apt/cache/archives/partial"
  : > "$work/apt/state/status"
  cat > "$work/apt/sources.list" <<EOF
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
  cat > "$work/apt/apt.conf" <<EOF
Dir::State "$work/apt/state";
Dir::State::status "$work/apt/state/status";
Dir::Cache "$work/apt/cache";
Dir::Etc::SourceList "$work/apt/sources.list";
Dir::Etc::SourceParts "/nonexistent";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
EOF
  export APT_CONFIG=$work/apt/apt.conf
  apt-get update -qq
  apt-get install -qq -y -d --no-install-recommends python3.11-minimal libpython3.11-stdlib libpython3.11-dev \
    libgomp1 >/dev/null
  unset APT_CONFIG
  rm -rf "$sysroot.tmp" && mkdir -p "$sysroot.tmp"
  for deb in "$work"/apt/cache/archives/*.deb; do dpkg-deb -x "$deb" "$sysroot.tmp"; done
  rm -rf "$sysroot" && mv "$sysroot.tmp" "$sysroot"
fi
python=$work/bin/python3
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec qemu-aarch64 -cpu max -L "%s" -0 "$0" "%s" "$@"\n' "$sysroot" "$sysroot/usr/bin/python3.11" > "$python"
chmod +x "$python"

# 2. modelctl's dependencies and test dependencies (pyproject.toml; not the hub mirror olah) as
#    aarch64 wheels
if [ ! -d "$work/site/pytest" ]; then
  mapfile -t deps < <(.venv/bin/python -c '
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(d for d in p["dependencies"] + p["optional-dependencies"]["test"] if not d.startswith("olah")))')
  .venv/bin/python -m pip install --quiet --no-warn-conflicts --target "$work/site" --only-binary=:all: \
    --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp "${deps[@]}"
fi

# 3. this checkout's package, its extensions cross-compiled with setup.py's flags
rm -rf "$work/src" && mkdir -p "$work/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/src"
cd "$work/src"
eval "$("$repo/.venv/bin/python" - <<'EOF'
import ast, shlex
tree = ast.parse(open("setup.py").read())
consts = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
          for t in n.targets if isinstance(t, ast.Name) and t.id in ("VARIANTS", "COMMON", "KERNEL", "CSRC")}
print("csrc=" + shlex.quote(consts["CSRC"]))
print("common=" + shlex.quote(" ".join(consts["COMMON"])))
print("kernel=" + shlex.quote(" ".join(consts["KERNEL"])))
print("variants=" + shlex.quote(" ".join(f"{k}:{','.join(v)}" for k, v in consts["VARIANTS"]["aarch64"].items())))
EOF
)"
ext=cpython-311-aarch64-linux-gnu.so
numpy_inc=$work/site/numpy/_core/include
cc=(aarch64-linux-gnu-gcc --sysroot="$sysroot" -shared -fPIC $common
    -I"$sysroot/usr/include/python3.11" -I"$sysroot/usr/include/aarch64-linux-gnu/python3.11" -I"$csrc")
pids=()
for pyx in modelctl/runtime/*.pyx; do
  m=${pyx%.pyx}
  "$repo/.venv/bin/python" -m cython -3 --directive boundscheck=False,wraparound=False "$pyx" -o "$m.c"
  "${cc[@]}" -I"$numpy_inc" -DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION "$m.c" -o "$m.$ext" &
  pids+=($!)
done
for v in $variants; do
  name=${v%%:*} flags=${v#*:}
  "${cc[@]}" $kernel ${flags//,/ } "$csrc/variant_$name.c" -o "modelctl/runtime/_mc_$name.$ext" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

# 4. the tests, under emulation
[ $# -gt 0 ] || set -- tests/test_kernels.py tests/test_ops.py tests/test_variants.py
PYTHONPATH=$work/src:$work/site "$python" -m pytest -q -p no:cacheprovider "$@"
