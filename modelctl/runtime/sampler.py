"""Token sampling, in llama.cpp's order and with its defaults.

The chain (llama.cpp ``common_sampler``): repeat penalty over the last N tokens,
top-k, top-p, min-p, temperature, then a draw from the softmax.  A temperature
of 0 (or below) is greedy: the arg-max of the (penalised) logits.

Defaults are llama.cpp's; a GGUF may carry its own in ``general.sampling.*``
(``SamplingParams.from_metadata``), and explicit options override both.
Pure NumPy, one function per stage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 40            # <= 0: all tokens
    top_p: float = 0.95        # >= 1: off
    min_p: float = 0.05        # <= 0: off
    repeat_penalty: float = 1.0  # 1: off
    repeat_last_n: int = 64    # 0: off, -1: the whole context
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def with_overrides(self, **values: Any) -> "SamplingParams":
        """A copy with the given values, ignoring those that are None."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], **overrides: Any) -> "SamplingParams":
        """llama.cpp's defaults, then the GGUF's ``general.sampling.*``, then ``overrides``."""
        values: dict[str, Any] = {}
        for key, (name, kind) in GGUF_SAMPLING_KEYS.items():
            value = metadata.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = kind(value)
        return cls().with_overrides(**values).with_overrides(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# general.sampling.* (llama.cpp's LLM_KV_SAMPLING_*) -> our field
GGUF_SAMPLING_KEYS = {
    "general.sampling.temp": ("temperature", float),
    "general.sampling.top_k": ("top_k", int),
    "general.sampling.top_p": ("top_p", float),
    "general.sampling.min_p": ("min_p", float),
    "general.sampling.penalty_repeat": ("repeat_penalty", float),
    "general.sampling.penalty_last_n": ("repeat_last_n", int),
}


# ---------------------------------------------------------------------------
# the stages: each takes and returns (ids, logits) of the remaining candidates
# ---------------------------------------------------------------------------


def apply_repeat_penalty(logits: np.ndarray, recent: Iterable[int], penalty: float) -> np.ndarray:
    """llama.cpp's repeat penalty: each distinct recent token once, divide positives, multiply negatives."""
    if penalty == 1.0:
        return logits
    ids = np.unique(np.fromiter(recent, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < logits.shape[0])]
    if ids.size == 0:
        return logits
    out = logits.copy()
    sel = out[ids]
    out[ids] = np.where(sel > 0, sel / penalty, sel * penalty)
    return out


def top_k(ids: np.ndarray, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest, sorted by logit descending (all of them, sorted, when k <= 0)."""
    if 0 < k < logits.shape[0]:
        part = np.argpartition(-logits, k - 1)[:k]
        ids, logits = ids[part], logits[part]
    order = np.argsort(-logits, kind="stable")
    return ids[order], logits[order]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def top_p(ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Smallest prefix (of sorted candidates) whose probability reaches ``p``."""
    if p >= 1.0:
        return ids, logits
    cum = np.cumsum(softmax(logits))
    keep = int(np.searchsorted(cum, p, side="left")) + 1
    keep = max(min_keep, min(keep, ids.shape[0]))
    return ids[:keep], logits[:keep]


def min_p(ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Candidates whose probability is at least ``p`` times the most likely one's."""
    if p <= 0.0 or ids.shape[0] <= min_keep:
        return ids, logits
    keep = logits >= logits.max() + np.log(p)
    if keep.sum() < min_keep:
        return ids[:min_keep], logits[:min_keep]
    return ids[keep], logits[keep]


class Sampler:
    """Picks the next token from a logits vector; holds the seeded random generator."""

    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def recent(self, history: list[int]) -> list[int]:
        n = self.params.repeat_last_n
        if n == 0:
            return []
        return history if n < 0 else history[-n:]

    def sample(self, logits: np.ndarray, history: list[int] = ()) -> int:
        p = self.params
        logits = np.asarray(logits, dtype=np.float32)
        logits = apply_repeat_penalty(logits, self.recent(list(history)), p.repeat_penalty)
        if p.greedy:
            return int(np.argmax(logits))
        ids = np.arange(logits.shape[0])
        ids, cand = top_k(ids, logits, p.top_k)
        ids, cand = top_p(ids, cand, p.top_p)
        ids, cand = min_p(ids, cand, p.min_p)
        probs = softmax(cand.astype(np.float64) / p.temperature)
        return int(ids[self.rng.choice(ids.shape[0], p=probs)])
