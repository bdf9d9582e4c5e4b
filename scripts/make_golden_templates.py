"""Write tests/golden/templates/*.json: chat templates rendered by Hugging Face transformers.

The reference is transformers' own ``render_jinja_template`` (what ``apply_chat_template(...,
tokenize=False)`` calls), run in a SEPARATE throwaway virtual environment outside the repo, never a
dependency of modelctl and without torch:

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install transformers gguf      # no torch: transformers does not require it
    /tmp/tfvenv/bin/python scripts/make_golden_templates.py

Inputs: llama.cpp's shipped templates (``vendor/llama.cpp/models/templates/*.jinja`` of the
llama-cpp-python sdist) and the ``tokenizer.chat_template`` of the three real test models (read with
llama.cpp's ``gguf`` package), each rendered for a few conversations, with and without the generation
prompt.  ``strftime_now`` is pinned to FIXED_NOW so that the outputs do not depend on the day.
A template that raises in transformers is recorded as an error: modelctl must raise too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import fetch  # noqa: E402  (stdlib only: finds or fetches the cached test inputs)

OUT = REPO / "tests" / "golden" / "templates"
FIXED_NOW = _dt.datetime(2026, 1, 15, 9, 30, 0)

SYSTEM = "You are a concise assistant. Answer in one sentence."
CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello, who are you?"}],
    "system_user": [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "What is the capital of France?"}],
    "multi_turn": [{"role": "system", "content": SYSTEM},
                   {"role": "user", "content": "Name a prime number."},
                   {"role": "assistant", "content": "7 is a prime number."},
                   {"role": "user", "content": "And one with {braces}, \"quotes\" & <tags> — café?"}],
    "no_system_multi": [{"role": "user", "content": "Hi!"},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": "Tell me a joke."}],
}
CASES = [(name, gen) for name in CONVERSATIONS for gen in (True, False)
         if gen or name == "multi_turn"]
LLAMA_CPP_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
MODELS = ("smollm2", "gemma3", "qwen")
# Gemma 3's format equals Gemma 2's (which refuses a system turn; Gemma 3 folds it into the first user turn).
MODEL_FALLBACK_REFERENCE = {"gemma3": "google-gemma-2-2b-it.jinja"}


def _freeze_clock() -> None:
    from transformers.utils import chat_template_utils as ctu

    class Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return FIXED_NOW

    ctu.datetime = Frozen


def _render(source: str, messages, gen: bool, tokens: dict) -> dict:
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(conversations=[messages], chat_template=source,
                                            add_generation_prompt=gen, **tokens)
        return {"output": rendered[0]}
    except Exception as exc:  # recorded: modelctl must fail too
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _cases(source: str, tokens: dict) -> list[dict]:
    return [{"conversation": name, "add_generation_prompt": gen, **_render(source, CONVERSATIONS[name], gen, tokens)}
            for name, gen in CASES]


def _model_tokens(reader) -> dict:
    """bos/eos/unk/pad texts from the GGUF vocabulary, as apply_chat_template passes special tokens."""
    def field(key):
        f = reader.get_field(key)
        return None if f is None else f.contents()

    tokens = field("tokenizer.ggml.tokens") or []
    out = {}
    for name, key in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("padding", "pad_token")):
        idx = field(f"tokenizer.ggml.{name}_token_id")
        if isinstance(idx, int) and 0 <= idx < len(tokens):
            out[key] = tokens[idx]
    return out, field("tokenizer.chat_template")


def main() -> None:
    import transformers
    from gguf import GGUFReader

    _freeze_clock()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"reference": f"transformers {transformers.__version__} render_jinja_template",
            "fixed_now": FIXED_NOW.isoformat(), "conversations": CONVERSATIONS}

    templates_dir = fetch.llama_cpp_source() / "vendor" / "llama.cpp" / "models" / "templates"
    shipped = {}
    for path in sorted(templates_dir.glob("*.jinja")):
        source = path.read_text(encoding="utf-8")
        shipped[path.name] = {"sha256": hashlib.sha256(source.encode()).hexdigest(), "cases": _cases(source, LLAMA_CPP_TOKENS)}
    (OUT / "llama_cpp.json").write_text(json.dumps({**meta, "special_tokens": LLAMA_CPP_TOKENS, "templates": shipped},
                                                   indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    models = {}
    for name in MODELS:
        reader = GGUFReader(str(fetch.model_path(name)))
        tokens, source = _model_tokens(reader)
        entry = {"special_tokens": tokens, "chat_template": source is not None}
        if source is None:
            # No template in the file (Gemma 3 270M): modelctl detects the format from the vocabulary; the
            # reference is the nearest shipped template of that family, rendered with this model's tokens.
            ref = MODEL_FALLBACK_REFERENCE[name]
            source = (templates_dir / ref).read_text(encoding="utf-8")
            entry["reference_template"] = ref
        entry["sha256"] = hashlib.sha256(source.encode()).hexdigest()
        entry["cases"] = _cases(source, tokens)
        models[name] = entry
    (OUT / "models.json").write_text(json.dumps({**meta, "models": models}, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    n_err = sum(1 for t in shipped.values() for c in t["cases"] if "error" in c)
    print(f"{len(shipped)} shipped templates ({n_err} error cases), {len(models)} models -> {OUT}")


if __name__ == "__main__":
    main()
