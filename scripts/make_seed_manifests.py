#!/usr/bin/env python3
"""Regenerates the built-in manifests of the seed models from their model cards.

    python scripts/make_seed_manifests.py [CARDS_DIR]      (default: ../shared/cards)

The cards give repo, files, prompt template, stop strings and sampling hints; the
architecture blocks below come from the base models' published config.json
(Zephyr 7B beta = Mistral-7B-v0.1's shape; CausalLM 7B = a llama-shaped Qwen-7B
with its 151936-token vocabulary).  Writes manifests/NAME.yaml atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modelctl.card import parse_card, read_card_file  # noqa: E402
from modelctl.manifest import manifest_from_card, save_manifest  # noqa: E402

# name -> (card file, architecture).  Data.
SEEDS = {
    "zephyr-7b-beta": (
        "TheBloke--zephyr-7B-beta-GGUF.README.md",
        {"arch": "llama", "layers": 32, "heads": 32, "kv_heads": 8, "head_dim": 128, "embedding": 4096,
         "ffn": 14336, "vocab": 32000, "context_length": 32768, "sliding_window": 4096, "rope_theta": 10000.0},
    ),
    "causallm-7b-dpo-alpha": (
        "tastypear--CausalLM-7B-DPO-alpha-GGUF.README.md",
        {"arch": "llama", "layers": 32, "heads": 32, "kv_heads": 32, "head_dim": 128, "embedding": 4096,
         "ffn": 11008, "vocab": 151936, "context_length": 8192},
    ),
}


def build(name: str, cards_dir: Path):
    card_file, arch = SEEDS[name]
    path = cards_dir / card_file
    card = parse_card(read_card_file(path), source=str(path))
    return manifest_from_card(card, name=name, architecture=arch, where=str(path))


def main(argv: list[str]) -> int:
    cards_dir = Path(argv[1]) if len(argv) > 1 else REPO.parent / "shared" / "cards"
    for name in SEEDS:
        out = save_manifest(build(name, cards_dir), REPO / "manifests" / f"{name}.yaml")
        print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
