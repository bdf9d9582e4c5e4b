"""The sampler: llama.cpp's chain (penalty, top-k, top-p, min-p, temperature) on small logits."""

import numpy as np
import pytest

from modelctl.runtime.sampler import (Sampler, SamplingParams, apply_repeat_penalty, min_p, top_k, top_p)

LOGITS = np.log(np.array([0.05, 0.4, 0.1, 0.3, 0.15], dtype=np.float32))


def test_defaults_are_llama_cpp_s():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty, p.repeat_last_n) == \
        (0.8, 40, 0.95, 0.05, 1.0, 64)


def test_gguf_sampling_metadata_then_overrides():
    md = {"general.sampling.temp": 0.6, "general.sampling.top_k": 20, "general.sampling.top_p": 0.9,
          "general.sampling.penalty_repeat": 1.1}
    p = SamplingParams.from_metadata(md, top_k=None, temperature=0.3)
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty) == (0.3, 20, 0.9, 0.05, pytest.approx(1.1))


def test_greedy_is_argmax_even_with_a_seed():
    assert Sampler(SamplingParams(temperature=0, seed=3)).sample(LOGITS) == 1


def test_top_k_keeps_the_k_largest_sorted():
    ids, lg = top_k(np.arange(5), LOGITS, 2)
    assert ids.tolist() == [1, 3]
    ids, _ = top_k(np.arange(5), LOGITS, 0)
    assert ids.tolist() == [1, 3, 4, 2, 0]


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    ids, lg = top_k(np.arange(5), LOGITS, 0)
    assert top_p(ids, lg, 0.7)[0].tolist() == [1, 3]      # 0.4 + 0.3 reaches 0.7
    assert top_p(ids, lg, 0.71)[0].tolist() == [1, 3, 4]
    assert top_p(ids, lg, 1.0)[0].tolist() == [1, 3, 4, 2, 0]


def test_min_p_is_relative_to_the_most_likely():
    ids, lg = top_k(np.arange(5), LOGITS, 0)
    assert sorted(min_p(ids, lg, 0.3)[0].tolist()) == [1, 3, 4]   # p >= 0.12
    assert min_p(ids, lg, 0.0)[0].tolist() == ids.tolist()


def test_repeat_penalty_divides_positive_and_multiplies_negative_once():
    lg = np.array([2.0, -2.0, 1.0], dtype=np.float32)
    out = apply_repeat_penalty(lg, [0, 1, 0, 0], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]
    assert apply_repeat_penalty(lg, [0], 1.0) is lg


def test_repeat_penalty_changes_the_greedy_choice_only_within_the_window():
    lg = np.array([3.0, 2.0], dtype=np.float32)
    s = Sampler(SamplingParams(temperature=0, repeat_penalty=2.0, repeat_last_n=2))
    assert s.sample(lg, [0]) == 1
    assert s.sample(lg, [0, 1, 1]) == 0        # token 0 is outside the last 2


def test_seeded_sampling_is_reproducible_and_follows_the_distribution():
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=42)
    a = [Sampler(params).sample(LOGITS) for _ in range(3)]
    assert len(set(a)) == 1
    s = Sampler(params)
    draws = np.bincount([s.sample(LOGITS) for _ in range(4000)], minlength=5) / 4000
    assert np.allclose(draws, np.exp(LOGITS), atol=0.03)


def test_top_k_one_is_greedy_whatever_the_temperature():
    s = Sampler(SamplingParams(temperature=5.0, top_k=1, seed=1))
    assert {s.sample(LOGITS) for _ in range(50)} == {1}


def test_low_temperature_sharpens():
    s = Sampler(SamplingParams(temperature=0.05, top_k=0, top_p=1.0, min_p=0.0, seed=7))
    draws = [s.sample(LOGITS) for _ in range(200)]
    assert draws.count(1) > 190
