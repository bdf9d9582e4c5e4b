"""Hardware probes against fake /proc and /sys trees and a fake nvidia-smi on PATH."""

from __future__ import annotations

import json
import os
import stat

import pytest

from modelctl.core.errors import UsageError
from modelctl.fit.hardware import Machine, GPU, apply_overrides, detect, parse_visible_devices
from modelctl.core.units import format_size, parse_size

GiB = 1 << 30
MiB = 1 << 20


def test_parse_size_units():
    assert parse_size("16GB") == 16_000_000_000
    assert parse_size("16 GiB") == 16 * GiB
    assert parse_size("8gib") == 8 * GiB
    assert parse_size("4.37 GB") == 4_370_000_000
    assert parse_size("512MiB") == 512 * MiB
    assert parse_size("16G") == 16 * GiB          # bare letter: binary, like free -h
    assert parse_size("1024") == 1024
    assert parse_size(".5 KiB") == 512
    for bad in ("", "GB", "12 parsecs", "-3GB", "1e9", "1.2.3GB"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_size(512 * MiB) == "512.00 MiB"
    assert format_size(4_370_000_000, binary=False) == "4.37 GB"
    assert format_size(12) == "12 B"


def _proc(tmp_path, meminfo: str, cgroup: str = "0::/\n"):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(meminfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


MEMINFO = "MemTotal:       65536000 kB\nMemFree:         1000000 kB\nMemAvailable:   40000000 kB\nBuffers: 1 kB\n"


def _no_tools(argv):
    return None


def test_meminfo_only(tmp_path):
    proc = _proc(tmp_path, MEMINFO)
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert m.ram_total_bytes == 65536000 * 1024
    assert m.ram_available_bytes == 40000000 * 1024
    assert m.gpus == []


def test_meminfo_without_memavailable(tmp_path):
    proc = _proc(tmp_path, "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n")
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert (m.ram_total_bytes, m.ram_available_bytes) == (1000 * 1024, 150 * 1024)


def test_cgroup_v2_limit_up_the_hierarchy(tmp_path):
    proc = _proc(tmp_path, MEMINFO, "0::/kubepods/pod1/ctr\n")
    cg = tmp_path / "sys" / "fs" / "cgroup"
    leaf = cg / "kubepods" / "pod1" / "ctr"
    leaf.mkdir(parents=True)
    (leaf / "memory.max").write_text("max\n")
    (cg / "kubepods" / "pod1" / "memory.max").write_text(f"{8 * GiB}\n")
    (cg / "kubepods" / "pod1" / "memory.current").write_text(f"{3 * GiB}\n")
    (cg / "kubepods" / "pod1" / "memory.stat").write_text(f"anon 1\ninactive_file {1 * GiB}\n")
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert m.ram_total_bytes == 8 * GiB
    assert m.ram_available_bytes == 6 * GiB     # 8 - 3 used + 1 reclaimable page cache
    assert any("cgroup" in n for n in m.notes)


def test_cgroup_v1_limit_and_unlimited(tmp_path):
    proc = _proc(tmp_path, MEMINFO, "12:cpu,cpuacct:/docker/abc\n7:memory:/docker/abc\n")
    mem = tmp_path / "sys" / "fs" / "cgroup" / "memory" / "docker" / "abc"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(f"{4 * GiB}\n")
    (mem / "memory.usage_in_bytes").write_text(f"{1 * GiB}\n")
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert (m.ram_total_bytes, m.ram_available_bytes) == (4 * GiB, 3 * GiB)
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")   # v1's "no limit"
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert m.ram_total_bytes == 65536000 * 1024


def test_cgroup_path_cannot_escape_root(tmp_path):
    proc = _proc(tmp_path, MEMINFO, "0::/../../etc\n")
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert m.ram_total_bytes == 65536000 * 1024


def test_amd_sysfs(tmp_path):
    proc = _proc(tmp_path, MEMINFO)
    dev = tmp_path / "sys" / "class" / "drm" / "card1" / "device"
    dev.mkdir(parents=True)
    (dev / "mem_info_vram_total").write_text(f"{16 * GiB}\n")
    (dev / "mem_info_vram_used").write_text(f"{1 * GiB}\n")
    (dev / "product_name").write_text("Radeon RX 7800 XT\n")
    (tmp_path / "sys" / "class" / "drm" / "card0-DP-1").mkdir()       # a connector, not a card
    (tmp_path / "sys" / "class" / "drm" / "card0" / "device").mkdir(parents=True)   # iGPU without VRAM files
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={}, platform="linux", run=_no_tools, use_nvml=False)
    assert [(g.name, g.vram_total_bytes, g.vram_free_bytes, g.vendor) for g in m.gpus] == [
        ("Radeon RX 7800 XT", 16 * GiB, 15 * GiB, "amd")]


def _fake_nvidia_smi(tmp_path, lines: str, rc: int = 0):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "nvidia-smi"
    # A real executable: the probe runs it as a subprocess and parses its CSV.
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/nvidia-smi.args"\n'
        f"cat <<'EOF'\n{lines}EOF\nexit {rc}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bindir


NV_LINES = (
    "0, GPU-aaaa1111, NVIDIA GeForce RTX 4090, 24564, 23000\n"
    "1, GPU-bbbb2222, NVIDIA GeForce RTX 3060, 12288, [N/A]\n"
    "2, GPU-cccc3333, NVIDIA RTX A2000, 6144, 6000\n"
)


def test_nvidia_smi_subprocess(tmp_path):
    proc = _proc(tmp_path, MEMINFO)
    bindir = _fake_nvidia_smi(tmp_path, NV_LINES)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env=env, platform="linux", use_nvml=False)
    assert [(g.name, g.vram_total_bytes, g.vram_free_bytes) for g in m.gpus] == [
        ("NVIDIA GeForce RTX 4090", 24564 * MiB, 23000 * MiB),
        ("NVIDIA RTX A2000", 6144 * MiB, 6000 * MiB),     # the [N/A] line is skipped
    ]
    assert "--query-gpu" in (tmp_path / "nvidia-smi.args").read_text()
    env["CUDA_VISIBLE_DEVICES"] = "GPU-cccc,0"
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env=env, platform="linux", use_nvml=False)
    assert [g.name for g in m.gpus] == ["NVIDIA RTX A2000", "NVIDIA GeForce RTX 4090"]
    env["CUDA_VISIBLE_DEVICES"] = ""
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env=env, platform="linux", use_nvml=False)
    assert m.gpus == []


def test_nvidia_smi_failing(tmp_path):
    proc = _proc(tmp_path, MEMINFO)
    bindir = _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate\n", rc=9)
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={"PATH": str(bindir)}, platform="linux",
               use_nvml=False)
    assert m.gpus == []


def test_visible_devices_parsing():
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("-1") == []
    assert parse_visible_devices("1,0,-1,2") == ["1", "0"]


def test_apple(tmp_path):
    answers = {"sysctl": f"{32 * GiB}\n", "vm_stat": "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n"
               "Pages free:  100000.\nPages inactive: 200000.\nPages active: 5.\n"}
    m = detect(platform="darwin", run=lambda argv: answers.get(argv[0]), env={})
    assert m.ram_total_bytes == 32 * GiB
    assert m.ram_available_bytes == 300000 * 16384
    assert m.unified_memory
    assert m.gpus[0].vram_total_bytes == int(32 * GiB * 2 / 3)
    m = detect(platform="darwin", run=lambda argv: {"sysctl": f"{64 * GiB}\n"}.get(argv[0]), env={})
    assert m.gpus[0].vram_total_bytes == 48 * GiB
    o = apply_overrides(m, vram="40GiB")
    assert o.unified_memory and [(g.vendor, g.vram_free_bytes) for g in o.gpus] == [("apple", 40 * GiB)]
    o = apply_overrides(m, ram="16GiB")
    assert o.gpus[0].vram_total_bytes == int(16 * GiB * 2 / 3)      # the budget follows --ram


def test_overrides():
    base = Machine(64 * GiB, 40 * GiB, [GPU("A", 24 * GiB, 20 * GiB, "nvidia", 0),
                                        GPU("B", 12 * GiB, 12 * GiB, "nvidia", 1)])
    m = apply_overrides(base, ram="16GiB")
    assert (m.ram_total_bytes, m.ram_available_bytes, len(m.gpus)) == (16 * GiB, 16 * GiB, 2)
    assert apply_overrides(base, gpus="none").gpus == []
    assert [g.name for g in apply_overrides(base, gpus="1").gpus] == ["A"]
    m = apply_overrides(base, vram="8GiB")
    assert [(g.vram_total_bytes, g.vram_free_bytes) for g in m.gpus] == [(8 * GiB, 8 * GiB)]
    assert len(apply_overrides(base, vram="8GB", gpus="2").gpus) == 2
    assert base.ram_total_bytes == 64 * GiB and len(base.gpus) == 2      # the original is untouched
    with pytest.raises(UsageError):
        apply_overrides(base, ram="lots")
    with pytest.raises(UsageError):
        apply_overrides(base, gpus="3")
    with pytest.raises(UsageError):
        apply_overrides(base, gpus="some")


def test_nvml_when_importable(tmp_path, monkeypatch):
    """NVML (nvidia-ml-py's pynvml) is preferred when importable; a stand-in module plays the driver."""
    import sys
    import types

    calls = []
    mem = types.SimpleNamespace(total=16 * GiB, free=15 * GiB, used=1 * GiB)
    fake = types.SimpleNamespace(
        nvmlInit=lambda: calls.append("init"), nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: mem, nvmlDeviceGetName=lambda h: b"NVIDIA L4",
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}abc")
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    proc = _proc(tmp_path, MEMINFO)
    m = detect(proc_root=proc, sys_root=tmp_path / "sys", env={"CUDA_VISIBLE_DEVICES": "1"}, platform="linux",
               run=_no_tools)
    assert [(g.name, g.index, g.vram_free_bytes) for g in m.gpus] == [("NVIDIA L4", 1, 15 * GiB)]
    assert calls == ["init", "shutdown"]
