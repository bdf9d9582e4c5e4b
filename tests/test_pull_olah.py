"""`modelctl pull` against olah, a third-party self-hosted Hub mirror, run as a real subprocess.

olah serves local git repositories (``mirrors-path``, offline mode).  It answers the repo listing,
``revision/main`` info and ``resolve``, but not ``Range``, file sizes in the listing or LFS hashes: pull
must still work (single-stream transfer, sha256 computed and recorded).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import run_cli

OLAH_CLI = Path(sys.executable).with_name("olah-cli")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


FILES = {
    "README.md": b"---\nlicense: apache-2.0\nmodel_creator: olah-test\n---\n# Mirrored\n",
    "mirror.Q4_K_M.gguf": hashlib.sha256(b"a").digest() * 70_000,         # 2.24 MB
    "mirror.Q8_0.gguf": hashlib.sha256(b"b").digest() * 40_000,
    "m-Q5_0-00001-of-00002.gguf": b"1" * 300_000,
    "m-Q5_0-00002-of-00002.gguf": b"2" * 200_000,
}


@pytest.fixture(scope="module")
def olah(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.fail("git is required to build the mirrored repository for olah")
    root = tmp_path_factory.mktemp("olah")
    repo = root / "mirrors" / "models" / "olahorg" / "mirror-GGUF"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for name, data in FILES.items():
        (repo / name).write_bytes(data)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "model files")
    commit = _git(repo, "rev-parse", "HEAD")
    port = _free_port()
    (root / "config.toml").write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{root / "repos"}"\n'
        f'mirrors-path = ["{root / "mirrors"}"]\n'
        "\n[accessibility]\noffline = true\n"
    )
    proc = subprocess.Popen([str(OLAH_CLI), "-c", str(root / "config.toml")], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/models/olahorg/mirror-GGUF/revision/main", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("olah did not start")
            time.sleep(0.2)
    yield {"url": url, "commit": commit}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def env(tmp_path, olah):
    return {"HF_ENDPOINT": olah["url"], "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hub"),
            "MODELCTL_CACHE": str(tmp_path / "mc"), "HF_TOKEN": "", "HF_HUB_OFFLINE": ""}


def test_olah_pull_quant(env, olah, tmp_path):
    r = run_cli("pull", "olahorg/mirror-GGUF:q4_k_m", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["commit"] == olah["commit"]
    by = {f["name"]: f for f in out["files"]}
    assert set(by) == {"README.md", "mirror.Q4_K_M.gguf"}
    g = by["mirror.Q4_K_M.gguf"]
    assert Path(g["path"]).read_bytes() == FILES["mirror.Q4_K_M.gguf"]
    assert g["sha256"] == hashlib.sha256(FILES["mirror.Q4_K_M.gguf"]).hexdigest()   # computed, olah gives none
    assert g["size_bytes"] == len(FILES["mirror.Q4_K_M.gguf"]) and g["status"] == "downloaded"
    snap = tmp_path / "hub" / "models--olahorg--mirror-GGUF" / "snapshots" / olah["commit"]
    assert (snap / "mirror.Q4_K_M.gguf").is_symlink()
    again = json.loads(run_cli("pull", "olahorg/mirror-GGUF:Q4_K_M", "--json", env=env).stdout)
    assert {f["status"] for f in again["files"]} == {"cached"}


def test_olah_dry_run_shards_and_show(env, olah):
    r = run_cli("pull", "olahorg/mirror-GGUF", "--dry-run", "--json", env=env)
    assert r.returncode == 0, r.stderr
    names = [f["name"] for f in json.loads(r.stdout)["files"]]
    assert names == sorted(FILES)
    out = json.loads(run_cli("pull", "olahorg/mirror-GGUF:Q5_0", "--json", env=env).stdout)
    got = {f["name"]: Path(f["path"]).read_bytes() for f in out["files"]}
    assert got["m-Q5_0-00001-of-00002.gguf"] == FILES["m-Q5_0-00001-of-00002.gguf"]
    assert got["m-Q5_0-00002-of-00002.gguf"] == FILES["m-Q5_0-00002-of-00002.gguf"]
    show = json.loads(run_cli("show", "olahorg/mirror-GGUF:Q5_0", "--json", env=env).stdout)
    assert show["path"].endswith("m-Q5_0-00001-of-00002.gguf") and show["card"]["model_creator"] == "olah-test"


def test_olah_missing_file_names_the_closest(env):
    r = run_cli("pull", "olahorg/mirror-GGUF/mirror.Q4_K_S.gguf", env=env)
    assert r.returncode == 4 and "mirror.Q4_K_M.gguf" in r.stderr and "Traceback" not in r.stderr
