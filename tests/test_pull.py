"""`modelctl pull` / list / show / rm against a Hub-compatible server on 127.0.0.1 (tests/hubserver.py).

Every test runs the real CLI as a subprocess with its own HF_HUB_CACHE; the server counts the bytes it
sends, so resume is checked by what went over the wire.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from hubserver import git_blob_id

MiB = 1 << 20
COMMIT = "0123456789abcdef0123456789abcdef01234567"
README = b"---\nlicense: mit\nmodel_creator: tester\nbase_model: org/base\n---\n# Tiny model\n\nA card.\n"


def payload(n: int, seed: int) -> bytes:
    """Deterministic incompressible bytes (fast: sha256 counter blocks)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, i)).digest() * 64
        i += 1
    return bytes(out[:n])


@pytest.fixture
def env(tmp_path, hub):
    e = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "MODELCTL_CACHE": str(tmp_path / "mc"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MODELCTL_HTTP_TIMEOUT": "3",
    }
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
              "https_proxy"):
        e[k] = ""
    return e


def pull(env, *args, **kw):
    return run_cli("pull", *args, env=env, **kw)


def pull_json(env, *args):
    r = pull(env, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(hub):
    files = {
        "README.md": README,
        "tiny.Q4_0.gguf": payload(3 * MiB, 1),
        "tiny.Q8_0.gguf": payload(1 * MiB + 123, 2),
        "config.json": b"{}",
        "notes/extra.txt": b"extra",
    }
    hub.add("test/tiny-GGUF", files, commit=COMMIT)
    return files


# ---------------------------------------------------------------------------
# selection, layout, JSON contract
# ---------------------------------------------------------------------------


def test_pull_quant_json_contract_and_hf_layout(env, hub, tiny, tmp_path):
    out = pull_json(env, "test/tiny-GGUF:q4_0")
    assert set(out) >= {"repo", "revision", "files", "total_bytes"}
    assert out["repo"] == "test/tiny-GGUF" and out["revision"] == "main"
    names = [f["name"] for f in out["files"]]
    assert names == ["README.md", "config.json", "tiny.Q4_0.gguf"]   # the card comes along
    g = next(f for f in out["files"] if f["name"] == "tiny.Q4_0.gguf")
    assert g["status"] == "downloaded" and g["size_bytes"] == 3 * MiB and g["sha256"] == sha(tiny["tiny.Q4_0.gguf"])
    assert out["total_bytes"] == sum(f["size_bytes"] for f in out["files"])
    for f in out["files"]:
        assert set(f) >= {"name", "size_bytes", "sha256", "path", "status"}
    # Hugging Face cache layout: snapshot symlink -> blobs/<sha256> (LFS) or blobs/<git blob id>
    repo = tmp_path / "hub" / "models--test--tiny-GGUF"
    link = repo / "snapshots" / COMMIT / "tiny.Q4_0.gguf"
    assert Path(g["path"]) == link and link.is_symlink()
    assert Path(os.path.realpath(link)) == repo / "blobs" / sha(tiny["tiny.Q4_0.gguf"])
    assert Path(os.path.realpath(repo / "snapshots" / COMMIT / "README.md")).name == git_blob_id(README)
    assert (repo / "refs" / "main").read_text() == COMMIT
    assert link.read_bytes() == tiny["tiny.Q4_0.gguf"]
    assert not list((repo / "blobs").glob("*.incomplete*"))
    assert not (repo / "snapshots" / COMMIT / "tiny.Q8_0.gguf").exists()

    # --revision with a commit: same snapshot, no ref named after the commit
    at = pull_json(env, "test/tiny-GGUF:Q8_0", "--revision", COMMIT)
    assert at["revision"] == COMMIT and at["commit"] == COMMIT
    assert sorted(p.name for p in (repo / "refs").iterdir()) == ["main"]

    # A second pull is served from the store, nothing sent.
    before = dict(hub.sent)
    again = pull_json(env, "test/tiny-GGUF:Q4_0")
    assert {f["status"] for f in again["files"]} == {"cached"}
    assert hub.sent == before


def test_huggingface_hub_finds_what_modelctl_pulled(env, tiny, tmp_path):
    pull_json(env, "test/tiny-GGUF/tiny.Q8_0.gguf")
    code = ("from huggingface_hub import hf_hub_download; import sys\n"
            f"print(hf_hub_download('test/tiny-GGUF', 'tiny.Q8_0.gguf', revision='{COMMIT}'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, **env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == tmp_path / "hub" / "models--test--tiny-GGUF" / "snapshots" / COMMIT / "tiny.Q8_0.gguf"


def test_what_huggingface_hub_downloaded_is_not_downloaded_again(env, hub, tiny):
    code = "from huggingface_hub import hf_hub_download; print(hf_hub_download('test/tiny-GGUF', 'tiny.Q4_0.gguf'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    sent = hub.sent_total("tiny.Q4_0.gguf")
    out = pull_json(env, "test/tiny-GGUF:Q4_0")
    g = next(f for f in out["files"] if f["name"] == "tiny.Q4_0.gguf")
    assert g["status"] == "cached" and g["path"] == r.stdout.strip()
    assert hub.sent_total("tiny.Q4_0.gguf") == sent


def test_dry_run_writes_nothing(env, tiny, tmp_path):
    r = pull(env, "test/tiny-GGUF", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["dry_run"] is True
    assert d["total_bytes"] == sum(len(v) for v in tiny.values())
    assert d["download_bytes"] == d["total_bytes"] and d["free_disk_bytes"] > 0
    assert not (tmp_path / "hub" / "models--test--tiny-GGUF").exists()
    human = pull(env, "test/tiny-GGUF", "--dry-run")
    assert "tiny.Q4_0.gguf" in human.stdout and "free disk" in human.stdout


def test_include_exclude_and_dir(env, tiny, tmp_path):
    out = pull_json(env, "test/tiny-GGUF", "--include", "*.gguf", "--exclude", "*Q8_0*", "--dir", str(tmp_path / "d"))
    assert [f["name"] for f in out["files"]] == ["tiny.Q4_0.gguf"]
    placed = tmp_path / "d" / "tiny.Q4_0.gguf"
    assert placed.read_bytes() == tiny["tiny.Q4_0.gguf"]
    # --dir adds a hard link to the stored blob, not a second copy
    assert os.path.samefile(placed, out["files"][0]["path"])


def test_quant_ambiguity_lists_choices(env, hub):
    hub.add("test/amb-GGUF", {"a.Q4_K_M.gguf": b"x" * 10, "a.Q4_K_S.gguf": b"y" * 10,
                              "b.Q8_0.gguf": b"1", "c.Q8_0.gguf": b"2"})
    r = pull(env, "test/amb-GGUF:q4_k")
    assert r.returncode == 2 and "Q4_K_M" in r.stderr and "Q4_K_S" in r.stderr
    r = pull(env, "test/amb-GGUF:Q8_0")
    assert r.returncode == 2 and "b.Q8_0.gguf" in r.stderr and "c.Q8_0.gguf" in r.stderr
    r = pull(env, "test/amb-GGUF:Q2_K")
    assert r.returncode == 4 and "Q4_K_M" in r.stderr


def test_shards_all_parts_and_legacy_splits_joined(env, hub, tmp_path):
    p1, p2 = payload(MiB, 3), payload(MiB // 2, 4)
    la, lb = payload(700_000, 5), payload(300_000, 6)
    x1, x2, x3 = b"AAA" * 1000, b"BBB" * 1000, b"CCC" * 1000
    hub.add("test/split-GGUF", {
        "m-Q4_K_M-00001-of-00002.gguf": p1, "m-Q4_K_M-00002-of-00002.gguf": p2,
        "old.Q8_0.gguf-split-a": la, "old.Q8_0.gguf-split-b": lb,
        "p.Q6_K.gguf.part1of3": x1, "p.Q6_K.gguf.part2of3": x2, "p.Q6_K.gguf.part3of3": x3,
    })
    out = pull_json(env, "test/split-GGUF:Q4_K_M")
    assert sorted(f["name"] for f in out["files"]) == ["m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf"]

    out = pull_json(env, "test/split-GGUF:q8_0", "--dir", str(tmp_path / "d"))
    (joined,) = out["joined"]
    assert joined["name"] == "old.Q8_0.gguf" and Path(joined["path"]).read_bytes() == la + lb
    # the parts are gone once joined (no model stored twice), in the store and in --dir
    blobs = tmp_path / "hub" / "models--test--split-GGUF" / "blobs"
    assert not (blobs / sha(la)).exists() and not (blobs / sha(lb)).exists() and (blobs / sha(la + lb)).exists()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["old.Q8_0.gguf"]
    sent = hub.sent_total("old.Q8_0.gguf-split-a")
    again = pull_json(env, "test/split-GGUF:q8_0")              # and nothing is fetched again for them
    assert {f["status"] for f in again["files"]} == {"cached"} and hub.sent_total("old.Q8_0.gguf-split-a") == sent
    assert again["joined"][0]["path"] == joined["path"]

    out = pull_json(env, "test/split-GGUF/p.Q6_K.gguf")
    assert Path(out["joined"][0]["path"]).read_bytes() == x1 + x2 + x3

    # resolve_model: shards -> part 1, legacy -> the joined file
    code = ("import sys; from modelctl.hub.resolve import resolve_model\n"
            "for r in sys.argv[1:]: print(resolve_model(r, allow_download=False).name)\n")
    r = subprocess.run([sys.executable, "-c", code, "test/split-GGUF:Q4_K_M", "test/split-GGUF:Q8_0",
                        "test/split-GGUF:q6_k"], capture_output=True, text=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["m-Q4_K_M-00001-of-00002.gguf", "old.Q8_0.gguf", "p.Q6_K.gguf"]


# ---------------------------------------------------------------------------
# errors users understand
# ---------------------------------------------------------------------------


def test_not_found_with_closest_names(env, tiny):
    r = pull(env, "test/tiny-GUF")
    assert r.returncode == 4 and "test/tiny-GGUF" in r.stderr and "Traceback" not in r.stderr
    r = pull(env, "test/tiny-GGUF/tiny.Q4_O.gguf")
    assert r.returncode == 4 and "tiny.Q4_0.gguf" in r.stderr
    r = pull(env, "test/tiny-GGUF", "--revision", "nope")
    assert r.returncode == 4 and "revision" in r.stderr


def test_gated_repo_advice_and_token_never_shown(env, hub):
    hub.add("test/gated-GGUF", {"g.Q4_0.gguf": b"g" * 1000}, gated=True)
    r = pull(env, "test/gated-GGUF:Q4_0")
    assert r.returncode == 1 and "HF_TOKEN" in r.stderr and "license" in r.stderr
    secret = "hf_SECRETtokenNEVERshown1234567890"
    out = pull(env | {"HF_TOKEN": secret}, "test/gated-GGUF:Q4_0", "--json")
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr
    auth = [h for m, p, h in hub.requests if "gated" in p and any(k.lower() == "authorization" for k in h)]
    assert auth  # the token was sent to the server (and only there)
    bad = pull(env | {"HF_TOKEN": secret}, "test/gated-GGUF/missing.gguf")
    assert bad.returncode == 4 and secret not in bad.stdout + bad.stderr


def test_network_down_then_offline_from_cache(env, hub, tiny):
    pull_json(env, "test/tiny-GGUF:Q4_0")
    down = env | {"HF_ENDPOINT": "http://127.0.0.1:9"}
    r = pull(down, "test/tiny-GGUF:Q4_0")
    assert r.returncode == 5 and "--offline" in r.stderr
    out = json.loads(pull(down, "test/tiny-GGUF:Q4_0", "--offline", "--json").stdout)
    assert {f["status"] for f in out["files"]} == {"cached"} and out["revision"] == "main"
    r = pull(down | {"HF_HUB_OFFLINE": "1"}, "test/tiny-GGUF:Q4_0", "--json")
    assert r.returncode == 0, r.stderr
    r = pull(down | {"HF_HUB_OFFLINE": "1"}, "test/tiny-GGUF:Q8_0")
    assert r.returncode == 4


@pytest.mark.parametrize("bad", ["../evil.gguf", "/etc/evil.gguf", "a/../../evil.gguf"])
def test_hostile_file_names_refused(env, hub, tmp_path, bad):
    hub.add("test/evil-GGUF", {bad: b"evil", "ok.Q4_0.gguf": b"ok"})
    r = pull(env, "test/evil-GGUF")
    assert r.returncode == 6 and "unsafe file name" in r.stderr
    assert not list(tmp_path.rglob("evil.gguf"))


# ---------------------------------------------------------------------------
# faults: resume, retries, corruption, concurrency
# ---------------------------------------------------------------------------


def _wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False


def _popen_pull(env, *args):
    full = {**os.environ, "NO_COLOR": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "modelctl", "pull", *args], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_at_60_percent_then_resume(env, hub, tmp_path):
    size = 16 * MiB
    data = payload(size, 7)
    hub.add("test/big-GGUF", {"big.Q4_0.gguf": data})
    hub.faults["throttle"] = 0.01            # ~6 MB/s per connection: the kill lands mid-transfer
    proc = _popen_pull(env, "test/big-GGUF/big.Q4_0.gguf", "--workers", "2", "--json")
    assert _wait_for(lambda: hub.sent_total("big.Q4_0.gguf") >= 0.6 * size or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = hub.sent_total("big.Q4_0.gguf")
    assert first < size, "the pull finished before it could be killed"
    blobs = tmp_path / "hub" / "models--test--big-GGUF" / "blobs"
    assert list(blobs.glob("*.incomplete")) and not (blobs / sha(data)).exists()

    hub.faults.clear()
    out = pull_json(env, "test/big-GGUF/big.Q4_0.gguf", "--workers", "2")
    second = hub.sent_total("big.Q4_0.gguf") - first
    f = out["files"][0]
    assert f["status"] == "resumed" and f["sha256"] == sha(data)
    assert Path(f["path"]).read_bytes() == data
    assert second < 0.5 * size, f"re-downloaded {second} of {size} bytes"
    assert first + second - size < 0.15 * size      # little downloaded twice
    assert not list(blobs.glob("*.incomplete*"))


def test_ctrl_c_then_resume(env, hub):
    size = 8 * MiB
    data = payload(size, 8)
    hub.add("test/int-GGUF", {"i.Q4_0.gguf": data})
    hub.faults["throttle"] = 0.01
    proc = _popen_pull(env, "test/int-GGUF/i.Q4_0.gguf", "--workers", "2")
    assert _wait_for(lambda: hub.sent_total("i.Q4_0.gguf") >= 0.4 * size)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    first = hub.sent_total("i.Q4_0.gguf")
    hub.faults.clear()
    out = pull_json(env, "test/int-GGUF/i.Q4_0.gguf")
    assert out["files"][0]["status"] == "resumed"
    assert hub.sent_total("i.Q4_0.gguf") - first <= size - 0.3 * size


def test_connections_are_added_while_each_is_slow():
    """RAMP_START connections to start; doubled at each look that finds each bringing less than RAMP_BELOW."""
    from modelctl.hub.transfer import RAMP_BELOW, RAMP_EVERY, RAMP_START, _Ramp

    ramp = _Ramp(4 * RAMP_START, now=0.0)
    assert ramp.running == RAMP_START
    fast = int(RAMP_START * RAMP_BELOW * RAMP_EVERY) + 1   # bytes fast connections bring in one look
    assert ramp.more(10 * MiB, RAMP_EVERY / 2) == 0         # not time to look yet
    assert ramp.more(fast, RAMP_EVERY) == 0                 # fast: enough of them
    assert ramp.more(fast + MiB, 2 * RAMP_EVERY) == RAMP_START          # slow: twice as many
    assert ramp.more(fast + 2 * MiB, 3 * RAMP_EVERY) == 2 * RAMP_START
    assert ramp.more(fast + 3 * MiB, 4 * RAMP_EVERY) == 0  # the cap (--workers)
    assert _Ramp(RAMP_START + 1, 0.0).more(1, RAMP_EVERY) == 1
    assert _Ramp(1, 0.0).running == 1


def test_a_throttled_server_gets_every_connection(env, hub):
    """A server that caps each connection (as CDNs do) gets --workers of them (8: RAMP_START doubled once)."""
    data = payload(32 * MiB, 13)
    hub.add("test/cdn-GGUF", {"c.Q4_0.gguf": data})
    hub.faults["throttle"] = 0.01                      # about 6 MB/s per connection
    out = pull_json(env, "test/cdn-GGUF/c.Q4_0.gguf", "--workers", "8")
    assert Path(out["files"][0]["path"]).read_bytes() == data
    assert len(hub.peers) == 8


def test_random_connection_drops_and_5xx_are_retried(env, hub):
    data = payload(6 * MiB + 17, 9)
    hub.add("test/flaky-GGUF", {"f.Q4_0.gguf": data})
    hub.faults.update(drop_random=0.3, fail_5xx=3)
    out = pull_json(env, "test/flaky-GGUF/f.Q4_0.gguf", "--workers", "4")
    f = out["files"][0]
    assert Path(f["path"]).read_bytes() == data and f["sha256"] == sha(data)


def test_drop_mid_stream_resumes_inside_the_chunk(env, hub):
    data = payload(2 * MiB, 10)
    hub.add("test/drop-GGUF", {"d.Q4_0.gguf": data})
    hub.faults.update(drop_after=100_000, drop_times=3)
    out = pull_json(env, "test/drop-GGUF/d.Q4_0.gguf", "--workers", "1")
    assert Path(out["files"][0]["path"]).read_bytes() == data
    assert hub.sent_total("d.Q4_0.gguf") == len(data)   # nothing fetched twice


def test_stall_is_detected_and_retried(env, hub):
    data = payload(MiB, 11)
    hub.add("test/stall-GGUF", {"s.Q4_0.gguf": data})
    hub.faults.update(stall_after=64 << 10, stall_seconds=6)
    out = pull_json(env | {"MODELCTL_HTTP_TIMEOUT": "1"}, "test/stall-GGUF/s.Q4_0.gguf", "--workers", "1")
    assert Path(out["files"][0]["path"]).read_bytes() == data


def test_corrupted_byte_detected_nothing_marked_complete(env, hub, tmp_path):
    data = payload(2 * MiB, 12)
    hub.add("test/bad-GGUF", {"b.Q4_0.gguf": data})
    hub.faults["corrupt_at"] = 1_234_567
    r = pull(env, "test/bad-GGUF/b.Q4_0.gguf")
    assert r.returncode == 6 and "sha256 mismatch" in r.stderr and "Traceback" not in r.stderr
    repo = tmp_path / "hub" / "models--test--bad-GGUF"
    assert not (repo / "blobs" / sha(data)).exists()
    assert not (repo / "snapshots").exists() or not list((repo / "snapshots").rglob("b.Q4_0.gguf"))
    assert not list(repo.rglob("*.incomplete*"))
    hub.faults.clear()
    out = pull_json(env, "test/bad-GGUF/b.Q4_0.gguf")
    assert Path(out["files"][0]["path"]).read_bytes() == data


def test_corrupted_small_file_checked_against_its_git_blob_id(env, hub, tmp_path):
    hub.add("test/card-only", {"README.md": README})
    hub.faults["corrupt_at"] = 10
    r = pull(env, "test/card-only")
    assert r.returncode == 6 and "git blob id mismatch" in r.stderr
    assert not list((tmp_path / "hub").rglob("README.md"))
    assert not (tmp_path / "hub" / "models--test--card-only" / "blobs" / git_blob_id(README)).exists()


def test_concurrent_pulls_download_once(env, hub):
    size = 4 * MiB
    data = payload(size, 13)
    hub.add("test/conc-GGUF", {"c.Q4_0.gguf": data})
    hub.faults["throttle"] = 0.005
    procs = [_popen_pull(env, "test/conc-GGUF/c.Q4_0.gguf", "--json") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    statuses = sorted(json.loads(o)["files"][0]["status"] for o, _ in results)
    assert statuses == ["cached", "downloaded"]
    assert hub.sent_total("c.Q4_0.gguf") == size


def test_server_without_range_support(env, hub):
    data = payload(3 * MiB, 14)
    hub.add("test/norange-GGUF", {"n.Q4_0.gguf": data})
    hub.faults["no_range"] = True
    out = pull_json(env, "test/norange-GGUF/n.Q4_0.gguf")
    assert Path(out["files"][0]["path"]).read_bytes() == data
    assert hub.sent_total("n.Q4_0.gguf") == len(data)   # asked once, not once per worker


def test_not_enough_disk_refused_before_downloading(env, hub, tmp_path):
    hub.add("test/huge-GGUF", {"h.Q4_0.gguf": b"h" * 1000}, listed_sizes={"h.Q4_0.gguf": 1 << 52})
    r = pull(env, "test/huge-GGUF:Q4_0")
    assert r.returncode == 1 and "not enough free disk" in r.stderr
    assert hub.sent_total("h.Q4_0.gguf") == 0
    assert not list(tmp_path.rglob("h.Q4_0.gguf"))


def test_write_failure_leaves_nothing_marked_complete(env, hub, tmp_path):
    """A file that cannot be written (here: the file-size limit, as a full disk would) fails cleanly."""
    data = payload(3 * MiB, 15)
    hub.add("test/full-GGUF", {"f.Q4_0.gguf": data})

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))

    full = {**os.environ, "NO_COLOR": "1", **env}
    r = subprocess.run([sys.executable, "-m", "modelctl", "pull", "test/full-GGUF/f.Q4_0.gguf"], env=full,
                       capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "free some space" in r.stderr, r.stderr
    repo = tmp_path / "hub" / "models--test--full-GGUF"
    assert not (repo / "blobs" / sha(data)).exists() and not list(repo.rglob("snapshots/*/f.Q4_0.gguf"))
    out = pull_json(env, "test/full-GGUF/f.Q4_0.gguf")      # with room again, it completes
    assert Path(out["files"][0]["path"]).read_bytes() == data


# ---------------------------------------------------------------------------
# list, show, rm
# ---------------------------------------------------------------------------


def test_list_show_rm(env, hub, tiny, tmp_path, cli):
    pull_json(env, "test/tiny-GGUF")
    r = cli("list", "--json", env=env)
    models = json.loads(r.stdout)["models"]
    (m,) = models
    assert m["repo"] == "test/tiny-GGUF" and m["quants"] == ["Q4_0", "Q8_0"]
    assert "test/tiny-GGUF" in cli("list", env=env).stdout

    # the test files are not GGUF: show says so and exits 6, as run and tokenize do
    r = cli("show", "test/tiny-GGUF:Q4_0", "--json", env=env)
    assert r.returncode == 6 and "tiny.Q4_0.gguf" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    d = json.loads(r.stdout)                               # what could be read is still shown
    assert d["card"]["license"] == "mit" and d["architecture"] is None and d["architecture_error"]

    d = json.loads(cli("show", "test/tiny-GGUF", "--json", env=env).stdout)   # two quants, none named
    assert d["path"] is None and d["card"]["license"] == "mit" and d["card"]["title"] == "Tiny model"
    assert "Q8_0" in d["architecture_error"]
    assert {f["name"] for f in d["files"]} >= {"tiny.Q4_0.gguf", "tiny.Q8_0.gguf"}

    r = cli("rm", "test/tiny-GGUF:Q8_0", env=env)         # not a TTY, no -y: refuses
    assert r.returncode == 2 and "-y" in r.stderr
    r = cli("rm", "test/tiny-GGUF:Q8_0", "-y", env=env)
    assert r.returncode == 0, r.stderr
    blobs = tmp_path / "hub" / "models--test--tiny-GGUF" / "blobs"
    assert not (blobs / sha(tiny["tiny.Q8_0.gguf"])).exists()
    assert (blobs / sha(tiny["tiny.Q4_0.gguf"])).exists()
    assert json.loads(cli("list", "--json", env=env).stdout)["models"][0]["quants"] == ["Q4_0"]
    assert cli("rm", "test/tiny-GGUF", "-y", env=env).returncode == 0
    assert json.loads(cli("list", "--json", env=env).stdout)["models"] == []
    assert cli("rm", "test/tiny-GGUF", "-y", env=env).returncode == 4


def test_show_real_gguf_architecture(env, cli, smollm2_path):
    r = cli("show", str(smollm2_path), "--json", env=env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    a = d["architecture"]
    assert (a["arch"], a["layers"], a["heads"], a["kv_heads"], a["embedding"], a["vocab"]) == \
        ("llama", 30, 9, 3, 576, 49152)
    assert a["file_type"] == "Q4_1" and "<|im_start|>" in d["template"]


def test_rm_asks_on_a_terminal(env, hub, tiny, tmp_path):
    import pexpect

    pull_json(env, "test/tiny-GGUF:Q8_0")
    full = {**os.environ, **env, "NO_COLOR": "1"}
    snap = tmp_path / "hub" / "models--test--tiny-GGUF" / "snapshots" / COMMIT
    child = pexpect.spawn(sys.executable, ["-m", "modelctl", "rm", "test/tiny-GGUF:Q8_0"], env=full,
                          encoding="utf-8", timeout=60)
    child.expect(r"Delete\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and (snap / "tiny.Q8_0.gguf").exists()
    child = pexpect.spawn(sys.executable, ["-m", "modelctl", "rm", "test/tiny-GGUF:Q8_0"], env=full,
                          encoding="utf-8", timeout=60)
    child.expect("tiny.Q8_0.gguf")
    child.expect(r"Delete\?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not (snap / "tiny.Q8_0.gguf").exists()


def test_plain_url_and_hub_resolve_url(env, hub, tiny, tmp_path):
    url = f"{hub.file_url}/lfs/test/tiny-GGUF/tiny.Q8_0.gguf"
    out = pull_json(env, url, "--dir", str(tmp_path / "d"))
    (f,) = out["files"]
    assert out["repo"] is None and f["sha256"] == sha(tiny["tiny.Q8_0.gguf"])   # computed on the way
    assert Path(f["path"]).read_bytes() == tiny["tiny.Q8_0.gguf"] and str(tmp_path / "mc") in f["path"]
    assert (tmp_path / "d" / "tiny.Q8_0.gguf").read_bytes() == tiny["tiny.Q8_0.gguf"]
    assert pull_json(env, url)["files"][0]["status"] == "cached"
    # a Hub resolve URL is the repo file, into the HF cache
    out = pull_json(env, f"{hub.url}/test/tiny-GGUF/resolve/main/tiny.Q4_0.gguf")
    assert out["repo"] == "test/tiny-GGUF" and "models--test--tiny-GGUF" in out["files"][-1]["path"]
    r = pull(env, f"{hub.file_url}/lfs/test/tiny-GGUF/nope.gguf")
    assert r.returncode == 4
