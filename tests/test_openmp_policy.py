"""The runtime's OpenMP threads spin briefly, then sleep (modelctl/runtime/__init__.py), unless the user
chose a policy: checked in fresh interpreters, since libgomp reads its settings once, when it loads."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = ("import os, modelctl.runtime.kernels\n"
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))\n")


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env={**env, **env_extra})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_short_spin_by_default():
    from modelctl.runtime import SPIN_COUNT
    assert _run({}) == f"{SPIN_COUNT} None"
    assert int(SPIN_COUNT) < 300_000   # libgomp's own default, milliseconds of spinning


def test_the_users_policy_wins():
    assert _run({"OMP_WAIT_POLICY": "active"}) == "None active"
    assert _run({"GOMP_SPINCOUNT": "5"}) == "5 None"
