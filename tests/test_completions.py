"""Shell completions: current with the CLI, and working in a real bash."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_completions", REPO / "scripts" / "gen_completions.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()


def test_completion_scripts_are_current():
    stale = [name for name, text in GEN.render_all().items()
             if not (REPO / "completions" / name).exists()
             or (REPO / "completions" / name).read_text(encoding="utf-8") != text]
    assert not stale, f"completions/{', '.join(stale)} are stale: run `python scripts/gen_completions.py`"


def _bash_complete(*words: str, cwd: Path = REPO) -> list[str]:
    script = REPO / "completions" / "modelctl.bash"
    words_src = " ".join(f"'{w}'" for w in words)
    code = (f"source '{script}'; COMP_WORDS=({words_src}); COMP_CWORD={len(words) - 1}; _modelctl; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line]


def test_bash_completes_every_command_and_its_options():
    tree = GEN.command_tree()
    names = [c.path[-1] for c in tree.subcommands]
    assert "card" in names
    assert _bash_complete("modelctl", "") == names
    for cmd in tree.subcommands:
        assert cmd.path[-1] in _bash_complete("modelctl", cmd.path[-1][:2])
        flags = _bash_complete("modelctl", *cmd.path, "-")
        assert flags == [n for o in cmd.options for n in o.names]


def test_bash_completes_values(tmp_path):
    (tmp_path / "zephyr-notes.md").write_text("x")
    (tmp_path / "out.yaml").write_text("x")
    assert _bash_complete("modelctl", "card", "zep", cwd=tmp_path) == ["zephyr-7b-beta", "zephyr-notes.md"]
    assert _bash_complete("modelctl", "card", "--json", "causal", cwd=tmp_path) == ["causallm-7b-dpo-alpha"]
    assert _bash_complete("modelctl", "card", "-o", "ou", cwd=tmp_path) == ["out.yaml"]
    assert _bash_complete("modelctl", "card", "--name", "z", cwd=tmp_path) == []


def test_zsh_completes_in_a_real_terminal():
    import pexpect

    child = pexpect.spawn("zsh", ["-f", "-i"], env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": "/tmp"},
                          encoding="utf-8", timeout=30)
    try:
        child.sendline(f"fpath=({REPO / 'completions'} $fpath); autoload -U compinit; compinit -u -D; "
                       "modelctl() { : }; echo READ''Y")  # the echo, not the typed line, says READY
        child.expect("READY\r?\n")
        child.send("modelctl card zep\t")
        child.expect("zephyr-7b-beta")
        child.send("\x15")  # clear the line
        child.send("modelctl card --js\t")
        child.expect("--json")
    finally:
        child.close(force=True)


def test_fish_completes():
    script = REPO / "completions" / "modelctl.fish"
    r = subprocess.run(["fish", "--no-config", "-c", f"source '{script}'; complete -C 'modelctl card zep'"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[0] == "zephyr-7b-beta"
