"""The compiled variants of the kernels: chosen by the CPU's features, forced by MODELCTL_KERNELS (or
refused), and all computing the same floats as the generic one, bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelctl.runtime import kernels as K
from modelctl.runtime import variants
from modelctl.runtime.synth import random_tensor
from modelctl.gguf.quants import GGML_TYPES_BY_NAME

RUNNABLE = variants.runnable()


def test_this_install_has_every_variant_of_its_architecture():
    # setup.py builds them all (optional ones only fail on a compiler too old, not here)
    assert set(variants.built()) == set(variants.VARIANTS[variants.arch()])
    assert "generic" in RUNNABLE
    assert variants.choose({}) == RUNNABLE[0]


@pytest.mark.parametrize("name", K.SUPPORTED_TYPES)
def test_every_variant_equals_generic_bit_for_bit(name):
    rng = np.random.default_rng(7)
    t = GGML_TYPES_BY_NAME[name]
    W = random_tensor(name, rows=37, cols=t.block_size * (7 if t.block_size == 32 else 3), rng=rng)
    X = rng.standard_normal((15, W.cols)).astype(np.float32)   # tiles of 8 (AVX-512), 4 and 3 rows
    before = K.variant()
    results = {}
    try:
        for v in RUNNABLE:
            K.use(v)
            results[v] = (K.matmul(W, X, n_threads=2), K.matvec(W, X[2], n_threads=1), K.dequantize(W))
    finally:
        K.use(before)
    for v, (mm, mv, dq) in results.items():
        g = results["generic"]
        assert np.array_equal(mm, g[0]), f"{v} matmul differs from generic"
        assert np.array_equal(mv, g[1]), f"{v} matvec differs from generic"
        assert np.array_equal(dq, g[2]), f"{v} dequantize differs from generic"
        assert np.array_equal(mm[2], mv)


def test_forcing_a_variant(monkeypatch):
    for v in RUNNABLE:
        assert variants.choose({variants.ENV: v}) == v
        assert variants.choose({variants.ENV: v.upper() + " "}) == v
    with pytest.raises(variants.KernelsError, match="not a variant"):
        variants.choose({variants.ENV: "sse9"})
    other = "neon" if variants.arch() == "x86_64" else "avx2"
    with pytest.raises(variants.KernelsError, match="not for this"):
        variants.choose({variants.ENV: other})


def test_a_cpu_without_the_features_gets_generic_and_forcing_more_is_refused(monkeypatch):
    monkeypatch.setattr(variants, "cpu_features", lambda: frozenset())
    assert variants.runnable() == ("generic",)
    assert variants.choose({}) == "generic"
    best = variants.built()[0]
    if best != "generic":
        with pytest.raises(variants.KernelsError, match="this CPU lacks") as e:
            variants.choose({variants.ENV: best})
        assert "this CPU runs generic" in e.value.one_line()
        with pytest.raises(variants.KernelsError):
            variants.load(best)   # never imported where the CPU lacks it
        with pytest.raises(variants.KernelsError):
            K.use(best)


def test_cpu_features_are_read():
    feats = variants.cpu_features()
    if variants.arch() == "x86_64":
        assert {"sse2"} <= feats or not feats   # Linux names (empty only where unreadable)


def test_version_says_which_kernels_run(cli):
    r = cli("--version")
    assert r.returncode == 0
    assert f"(kernels: {RUNNABLE[0]})" in r.stdout
    if "generic" != RUNNABLE[0]:
        r = cli("--version", env={variants.ENV: "generic"})
        assert "(kernels: generic)" in r.stdout


@pytest.mark.parametrize("value, what", [("bogus", "not a variant"), ("neon", "not for this")])
def test_a_refused_variant_is_a_one_line_usage_error(cli, smollm2_path, value, what):
    if variants.arch() != "x86_64" and value == "neon":
        value = "avx2"
    for args in (("--version",), ("run", str(smollm2_path), "-p", "Hi", "-n", "1")):
        r = cli(*args, env={variants.ENV: value})
        assert r.returncode == 2, r.stderr
        assert what in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("variant", RUNNABLE)
def test_bench_json_names_the_kernels(cli, smollm2_path, variant):
    r = cli("bench", str(smollm2_path), "-p", "8", "-n", "2", "-r", "1", "-t", "1", "--no-reference", "--json",
            env={variants.ENV: variant})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kernels"] == variant
