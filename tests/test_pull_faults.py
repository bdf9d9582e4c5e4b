"""Pulls under faults a user meets: a file changed on the server between two runs (or two requests), a
server without validators, a corrupt download of a plain URL, a full filesystem under --dir, Ctrl-C in
any command; and the README's exit-code table, walked code by code.

Real servers on 127.0.0.1 (tests/hubserver.py), real CLI subprocesses, real signals, real (namespaced)
tmpfs mounts for the full disks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from test_pull import MiB, _popen_pull, _wait_for, env, payload, pull, pull_json, sha  # noqa: F401 (env: fixture)

KEPT = "modelctl: interrupted; the partial download is kept: run the same command to resume"


def _url(hub, repo: str, name: str) -> str:
    return f"{hub.file_url}/lfs/{repo}/{name}"


def _kill_at(env, hub, url: str, name: str, size: int, fraction: float, sig=signal.SIGKILL, *args):
    """Start a throttled pull of ``url`` and send ``sig`` once ``fraction`` of the file went out."""
    base = hub.sent_total(name)
    hub.faults["throttle"] = 0.01
    proc = _popen_pull(env, url, "--workers", "2", *args)
    assert _wait_for(lambda: hub.sent_total(name) - base >= fraction * size or proc.poll() is not None)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    hub.faults.pop("throttle")
    assert hub.sent_total(name) - base < size, "the pull finished before it could be stopped"
    return proc.returncode, err


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# 1. resume validation
# ---------------------------------------------------------------------------


def test_file_changed_between_runs_restarts_from_zero(env, hub):
    size = 8 * MiB
    old, new = payload(size, 31), payload(size, 32)          # same size: only the validator tells
    hub.add("test/chg", {"c.gguf": old})
    url = _url(hub, "test/chg", "c.gguf")
    _kill_at(env, hub, url, "c.gguf", size, 0.5)
    hub.swap("test/chg", "c.gguf", new)
    r = pull(env, url, "--json")
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert Path(f["path"]).read_bytes() == new and f["sha256"] == sha(new) and f["status"] == "downloaded"
    changed = [line for line in _lines(r.stderr) if "changed on the server" in line]
    assert len(changed) == 1 and "starting over from zero" in changed[0], r.stderr
    ranged = [h for m, p, h in hub.requests if p.endswith("/c.gguf") and "Range" in h]
    assert any("If-Range" in h for h in ranged)               # the resume asked for the same version only


def test_file_swapped_between_two_requests_of_one_run(env, hub):
    size = 8 * MiB
    old, new = payload(size, 33), payload(size, 34)
    hub.add("test/swap", {"s.gguf": old})
    hub.swap("test/swap", "s.gguf", new, after_bytes=2 * MiB)
    r = pull(env, _url(hub, "test/swap", "s.gguf"), "--workers", "4", "--json")
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert Path(f["path"]).read_bytes() == new and f["sha256"] == sha(new)
    assert sum("changed on the server" in line for line in _lines(r.stderr)) == 1, r.stderr


def test_server_ignoring_if_range_is_caught_by_the_etag(env, hub):
    size = 6 * MiB
    old, new = payload(size, 35), payload(size, 36)
    hub.add("test/ign", {"i.gguf": old})
    url = _url(hub, "test/ign", "i.gguf")
    _kill_at(env, hub, url, "i.gguf", size, 0.5)
    hub.swap("test/ign", "i.gguf", new)
    hub.faults["ignore_if_range"] = True                      # answers the range of the NEW file: 206
    r = pull(env, url, "--json")
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)["files"][0]["path"]).read_bytes() == new
    assert "changed on the server (ETag" in r.stderr


def test_server_without_validators(env, hub):
    size = 6 * MiB
    old, new = payload(size, 37), payload(size, 38)
    hub.add("test/nov", {"n.gguf": old})
    hub.faults["no_validators"] = True
    url = _url(hub, "test/nov", "n.gguf")
    _kill_at(env, hub, url, "n.gguf", size, 0.5)
    hub.swap("test/nov", "n.gguf", new)
    # with the expected sha256: the splice of two versions is caught and removed
    r = pull(env, url, "--sha256", sha(new))
    assert r.returncode == 6 and "sha256 mismatch" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert pull_json(env, url, "--sha256", sha(new))["files"][0]["sha256"] == sha(new)
    # without one: the user is told the resumed file could not be verified
    hub.swap("test/nov", "n.gguf", old)
    url2 = url + "?v=2"
    _kill_at(env, hub, url2, "n.gguf", size, 0.5)
    r = pull(env, url2, "--json")
    assert r.returncode == 0, r.stderr
    assert "could not be verified" in r.stderr and len(_lines(r.stderr)) == 1, r.stderr


# ---------------------------------------------------------------------------
# 2. plain URLs: --sha256, the stored hash, --verify; 8. the waiter's sha256, unsafe names
# ---------------------------------------------------------------------------


def test_url_sha256_checked_and_stored_beside_the_file(env, hub, tmp_path):
    data = payload(3 * MiB, 39)
    hub.add("test/url", {"u.gguf": data})
    url = _url(hub, "test/url", "u.gguf")
    hub.faults["corrupt_at"] = 1_000_000
    r = pull(env, url, "--sha256", sha(data))
    assert r.returncode == 6 and "sha256 mismatch" in r.stderr
    assert not [p for p in (tmp_path / "mc").rglob("u.gguf*") if p.suffix != ".lock"]   # nothing kept
    r = pull(env, url)                                          # unchecked: the corrupt bytes are taken...
    assert r.returncode == 0, r.stderr
    hub.faults.clear()
    stored = next((tmp_path / "mc").rglob("u.gguf"))
    side = stored.with_name("u.gguf.sha256")
    assert side.read_text().splitlines()[1] == f"{sha(stored.read_bytes())}  u.gguf"   # sha256sum -c reads it
    r = pull(env, url, "--sha256", sha(data), "--json")        # ...and replaced once a hash is given
    assert r.returncode == 0 and "not " + sha(data) in r.stderr, r.stderr
    f = json.loads(r.stdout)["files"][0]
    assert stored.read_bytes() == data and f["sha256"] == sha(data) and f["status"] == "downloaded"
    assert subprocess.run(["sha256sum", "-c", side.name], cwd=stored.parent, capture_output=True).returncode == 0

    sent = hub.sent_total("u.gguf")
    assert pull_json(env, url)["files"][0] == {**f, "status": "cached"}          # size + mtime: trusted
    st = stored.stat()
    damaged = bytearray(data)
    damaged[5] ^= 1
    stored.write_bytes(damaged)
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))                      # same size, same mtime
    assert pull_json(env, url)["files"][0]["status"] == "cached"                # the cheap check cannot see it
    r = pull(env, url, "--verify", "--json")                                    # the full one does
    assert r.returncode == 0 and "damaged" in r.stderr, r.stderr
    assert json.loads(r.stdout)["files"][0]["status"] == "downloaded" and stored.read_bytes() == data
    assert hub.sent_total("u.gguf") == sent + len(data)

    assert pull(env, url, "--sha256", "abc").returncode == 2
    assert pull(env, "test/url", "--sha256", sha(data)).returncode == 2


def test_verify_hashes_stored_hub_files_again(env, hub, tmp_path):
    data = payload(2 * MiB, 46)
    hub.add("test/ver-GGUF", {"v.Q4_0.gguf": data})
    ref = "test/ver-GGUF/v.Q4_0.gguf"
    pull_json(env, ref)
    blob = tmp_path / "hub" / "models--test--ver-GGUF" / "blobs" / sha(data)
    damaged = bytearray(data)
    damaged[7] ^= 1
    blob.write_bytes(damaged)
    assert pull_json(env, ref)["files"][0]["status"] == "cached"
    r = pull(env, ref, "--verify", "--json")
    assert r.returncode == 0 and "damaged" in r.stderr, r.stderr
    assert json.loads(r.stdout)["files"][0]["status"] == "downloaded" and blob.read_bytes() == data


def test_pull_that_waited_reports_the_sha256(env, hub):
    data = payload(4 * MiB, 40)
    hub.add("test/wait", {"w.gguf": data})
    hub.faults["throttle"] = 0.005
    procs = [_popen_pull(env, _url(hub, "test/wait", "w.gguf"), "--json") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    files = sorted((json.loads(o)["files"][0] for o, _ in results), key=lambda f: f["status"])
    assert [f["status"] for f in files] == ["cached", "downloaded"]
    assert [f["sha256"] for f in files] == [sha(data)] * 2
    assert hub.sent_total("w.gguf") == len(data)


def test_unsafe_name_says_where_it_came_from(env, hub):
    r = pull(env, f"{hub.file_url}/lfs/test/x/%2E%2E")
    assert r.returncode == 2 and "your URL" in r.stderr and "server" not in r.stderr, r.stderr
    hub.add("test/evil-GGUF", {"../evil.gguf": b"evil"})
    r = pull(env, "test/evil-GGUF")
    assert r.returncode == 6 and "the server sent a path" in r.stderr


# ---------------------------------------------------------------------------
# 3. manifest sources: a mismatch is integrity (6), said once
# ---------------------------------------------------------------------------


def test_manifest_url_source_mismatch_exits_6_once(env, hub, tmp_path):
    import yaml

    good = payload(300_000, 41)
    hub.add("test/m", {"m.gguf": b"not it" * 1000})
    (tmp_path / "manifests").mkdir()
    m = {"schema": 1, "name": "mm", "repo": None, "revision": None, "files": [{"name": "m.gguf", "sha256": sha(good), "parts": []}],
         "sources": [{"kind": "url", "url": _url(hub, "test/m", "m.gguf"), "file": "m.gguf"}]}
    (tmp_path / "manifests" / "mm.yaml").write_text(yaml.safe_dump(m))
    r = pull(env | {"MODELCTL_MANIFESTS": str(tmp_path / "manifests")}, "mm")
    assert r.returncode == 6 and r.stderr.count("sha256 mismatch") == 1 and len(_lines(r.stderr)) == 1, r.stderr


# ---------------------------------------------------------------------------
# 4. --dir on another, full filesystem; 5. the advice names MODELCTL_CACHE
# ---------------------------------------------------------------------------


def _in_small_fs(env, mnt: Path, size: str, command: str, fsize_kib: int | None = None):
    """Run ``command`` (sh) with a fresh tmpfs of ``size`` on ``mnt``, in a private mount namespace (root
    not needed: ``unshare -rm``); prints the exit code and what is left in ``mnt`` after it."""
    limit = f"ulimit -f {fsize_kib}; " if fsize_kib else ""
    script = (f"mount -t tmpfs -o size={size} tmpfs {mnt} || exit 99; ({limit}{command}); "
              f"echo rc=$?; echo left=$(ls -A {mnt})")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "NO_COLOR": "1", **env})
    assert r.returncode == 0, r.stderr
    rc = int(re.search(r"rc=(\d+)", r.stdout).group(1))
    left = re.search(r"left=(.*)", r.stdout).group(1).split()
    return rc, left, r.stderr


def test_dir_on_a_small_filesystem(env, hub, tmp_path):
    data = payload(3 * MiB, 42)
    hub.add("test/dir", {"d.gguf": data})
    url = _url(hub, "test/dir", "d.gguf")
    pull_json(env, url)
    mnt = tmp_path / "small"
    mnt.mkdir()
    cmd = f"{sys.executable} -m modelctl pull {url} --dir {mnt}"
    # too small for the file: refused before a byte is written, with advice that fits --dir
    rc, left, err = _in_small_fs(env, mnt, "2m", cmd)
    assert rc == 1 and "not enough free disk" in err and "choose another --dir" in err and left == [], err
    # room by the free-space check, but the write fails (the file size limit: EFBIG, as ENOSPC): the
    # documented disk-full error, and no temporary file left behind, however often it is tried
    for _ in range(2):
        rc, left, err = _in_small_fs(env, mnt, "64m", cmd, fsize_kib=1024)
        assert rc == 1 and "disk full while writing" in err and "Traceback" not in err, err
        assert len(_lines(err)) == 1 and left == [], (err, left)
    rc, left, err = _in_small_fs(env, mnt, "64m", cmd)
    assert rc == 0 and left == ["d.gguf"], err


def test_not_enough_disk_for_a_url_names_modelctl_cache(env, hub, tmp_path):
    hub.add("test/big", {"b.gguf": payload(3 * MiB, 43)})
    mnt = tmp_path / "cache"
    mnt.mkdir()
    rc, left, err = _in_small_fs(env | {"MODELCTL_CACHE": str(mnt)}, mnt, "2m",
                                 f"{sys.executable} -m modelctl pull {_url(hub, 'test/big', 'b.gguf')}")
    assert rc == 1 and "not enough free disk" in err and "MODELCTL_CACHE" in err and "HF_HUB_CACHE" not in err


# ---------------------------------------------------------------------------
# 6. Ctrl-C, in every command
# ---------------------------------------------------------------------------


def test_ctrl_c_in_a_pull_says_the_partial_download_is_kept(env, hub):
    size = 8 * MiB
    hub.add("test/int", {"i.gguf": payload(size, 44)})
    rc, err = _kill_at(env, hub, _url(hub, "test/int", "i.gguf"), "i.gguf", size, 0.3, signal.SIGINT)
    assert rc == 130 and _lines(err) == [KEPT], err
    out = pull_json(env, _url(hub, "test/int", "i.gguf"))
    assert out["files"][0]["status"] == "resumed"


def test_second_ctrl_c_exits_at_once(env, hub):
    size = 8 * MiB
    hub.add("test/int2", {"j.gguf": payload(size, 45)})
    hub.faults.update(throttle=0.01, fail_5xx=10_000)            # retrying with backoff when interrupted
    proc = _popen_pull(env, _url(hub, "test/int2", "j.gguf"), "--workers", "4")
    assert _wait_for(lambda: sum(1 for m, p, h in hub.requests if p.endswith("/j.gguf")) >= 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and len(_lines(err)) == 1 and "Traceback" not in err, err
    assert _lines(err)[0].startswith("modelctl: interrupted")
    assert time.monotonic() - t < 5


def _interrupt(args: list[str], ready, env=None) -> subprocess.CompletedProcess:
    """Start ``modelctl ARGS`` with stdin a pipe left open, SIGINT it once ``ready(stdout_so_far)``."""
    full = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "modelctl", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full, cwd=REPO)
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    end = time.monotonic() + 120
    while not ready(seen) and proc.poll() is None and time.monotonic() < end:
        seen += proc.stdout.read() or b""
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(args, proc.returncode, seen + (out or b""), err.decode())


@pytest.mark.parametrize("command", ["tokenize", "card", "run", "chat"])
def test_ctrl_c_in_every_command(command, smollm2_path, tmp_path):
    settle = lambda seen: time.sleep(2) or True     # noqa: E731 (blocked reading stdin by then)
    args = {
        "tokenize": ([str(smollm2_path), "-"], settle),
        "card": (["-"], settle),
        "run": ([str(smollm2_path), "-p", "Once upon a time", "-n", "-1", "--temp", "0"], lambda s: len(s) > 20),
        "chat": ([str(smollm2_path), "-p", "Tell me a long story.", "-n", "-1"], lambda s: len(s) > 20),
    }[command]
    r = _interrupt([command, *args[0]], args[1], env={"MODELCTL_HISTORY": str(tmp_path / "h")})
    assert r.returncode == 130 and _lines(r.stderr)[-1:] == ["modelctl: interrupted"], r.stderr
    assert "Traceback" not in r.stderr and sum("interrupted" in line for line in _lines(r.stderr)) == 1


# ---------------------------------------------------------------------------
# the README's exit codes, each from a real command
# ---------------------------------------------------------------------------


def test_readme_exit_codes_are_what_commands_return(env, hub, tmp_path, smollm2_path):
    from modelctl.core import errors

    table = (REPO / "README.md").read_text().split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}
    defined = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert documented == defined == {0, 1, 2, 3, 4, 5, 6, 130}

    hub.add("test/gated-GGUF", {"g.Q4_0.gguf": b"g" * 1000}, gated=True)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    cases = {
        0: (["--version"], {}),
        1: (["pull", "test/gated-GGUF:Q4_0"], {}),
        2: (["pull", "x/y", "--workers", "0"], {}),
        3: (["recommend", str(smollm2_path), "--ram", "1MiB", "--gpus", "none"], {}),
        4: (["pull", "test/nothing-here"], {}),
        5: (["pull", "test/tiny-GGUF"], {"HF_ENDPOINT": "http://127.0.0.1:9"}),
        6: (["show", str(bad)], {}),
    }
    for code, (args, extra) in cases.items():
        r = run_cli(*args, env=env | extra)
        assert r.returncode == code, (code, args, r.stderr)
        if code:
            assert len(_lines(r.stderr)) >= 1 and "Traceback" not in r.stderr
    r = _interrupt(["tokenize", str(smollm2_path), "-"], lambda s: time.sleep(2) or True, env=env)
    assert r.returncode == 130 and _lines(r.stderr) == ["modelctl: interrupted"], r.stderr
