"""Chat templates: transformers-equal rendering of real templates, resolution order, hostile templates.

The expected outputs in tests/golden/templates/ were rendered by transformers' own
``render_jinja_template`` in a throwaway venv (scripts/make_golden_templates.py); transformers is not
a dependency of modelctl.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from modelctl.core.errors import TemplateError
from modelctl.gguf.reader import read_header
from modelctl.cards.sandbox import render_jinja
from modelctl.cards.templates import (
    KNOWN_FORMATS,
    ChatTemplate,
    detect_format,
    render_placeholders,
    resolve_template,
)

GOLDEN = Path(__file__).parent / "golden" / "templates"
SHIPPED = json.loads((GOLDEN / "llama_cpp.json").read_text(encoding="utf-8"))
MODELS = json.loads((GOLDEN / "models.json").read_text(encoding="utf-8"))
FIXED_NOW = datetime.fromisoformat(SHIPPED["fixed_now"])
CONVERSATIONS = SHIPPED["conversations"]


def _check_cases(template: ChatTemplate, cases: list[dict], skip_errors: bool = False) -> None:
    template.now = lambda: FIXED_NOW
    for case in cases:
        messages = CONVERSATIONS[case["conversation"]]
        label = f"{case['conversation']} add_generation_prompt={case['add_generation_prompt']}"
        if "error" in case:
            if skip_errors:
                continue
            with pytest.raises(TemplateError):
                template.render(messages, add_generation_prompt=case["add_generation_prompt"])
        else:
            got = template.render(messages, add_generation_prompt=case["add_generation_prompt"])
            assert got == case["output"], label


@pytest.mark.parametrize("name", sorted(SHIPPED["templates"]))
def test_llama_cpp_shipped_template_renders_like_transformers(llama_cpp_models, name):
    source = (llama_cpp_models / "templates" / name).read_text(encoding="utf-8")
    golden = SHIPPED["templates"][name]
    assert hashlib.sha256(source.encode()).hexdigest() == golden["sha256"], "golden is stale: rerun the script"
    tpl = ChatTemplate(name, "jinja", source, dict(SHIPPED["special_tokens"]))
    _check_cases(tpl, golden["cases"])


def test_all_shipped_templates_are_covered(llama_cpp_models):
    names = {p.name for p in (llama_cpp_models / "templates").glob("*.jinja")}
    assert names == set(SHIPPED["templates"]) and len(names) >= 60


@pytest.mark.parametrize("model", ["smollm2", "gemma3", "qwen"])
def test_real_model_template_resolves_and_renders_like_transformers(model, request):
    path = request.getfixturevalue(f"{model}_path")
    header = read_header(path)
    golden = MODELS["models"][model]
    tpl = resolve_template(metadata=header.metadata)
    assert tpl.special_tokens == golden["special_tokens"]
    if golden["chat_template"]:
        assert tpl.origin == "GGUF tokenizer.chat_template"
        assert hashlib.sha256(tpl.source.encode()).hexdigest() == golden["sha256"]
        _check_cases(tpl, golden["cases"])
    else:
        # No template in the file: the format is detected from the vocabulary; it must equal the
        # family's reference template wherever that one renders (Gemma 2 refuses system turns).
        assert tpl.origin == "detected format gemma"
        _check_cases(tpl, golden["cases"], skip_errors=True)
        assert any("output" in c for c in golden["cases"])


@pytest.mark.parametrize("model, stop", [("smollm2", "<|im_end|>"), ("qwen", "<|im_end|>"), ("gemma3", "<end_of_turn>")])
def test_end_of_turn_strings_of_real_models(model, stop, request):
    header = read_header(request.getfixturevalue(f"{model}_path"))
    assert resolve_template(metadata=header.metadata).stop_strings()[0] == stop


# ---------------------------------------------------------------------------
# Card prompt templates (placeholders)
# ---------------------------------------------------------------------------

ZEPHYR = "<|system|>\n</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n"
CHATML = "<|im_start|>system\n{system_message}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
MULTI = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi {prompt}"},
         {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Again"}]


def test_placeholders_chatml_multi_turn_is_literal():
    got = render_placeholders(CHATML, MULTI)
    assert got == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi {prompt}<|im_end|>\n"
                   "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n"
                   "<|im_start|>assistant\n")


def test_placeholders_zephyr_repeats_turns_and_folds_system():
    got = render_placeholders(ZEPHYR, MULTI)
    assert got == ("<|system|>\n</s>\n<|user|>\nBe brief.\n\nHi {prompt}</s>\n<|assistant|>\nHello!</s>\n"
                   "<|user|>\nAgain</s>\n<|assistant|>\n")
    one = render_placeholders(ZEPHYR, [{"role": "user", "content": "Q"}])
    assert one == ZEPHYR.replace("{prompt}", "Q")


def test_placeholder_stop_strings_and_seed_card(shared_cards):
    tpl = ChatTemplate("card", "placeholders", ZEPHYR)
    assert tpl.stop_strings() == ["</s>", "<|user|>"]
    tpl = ChatTemplate("card", "placeholders", "USER: {prompt} ASSISTANT:", {"eos_token": "</s>"})
    assert tpl.render([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                       {"role": "user", "content": "c"}]) == "USER: a ASSISTANT:b</s>USER: c ASSISTANT:"
    with pytest.raises(TemplateError):
        ChatTemplate("card", "placeholders", "no placeholder").render([{"role": "user", "content": "x"}])


# ---------------------------------------------------------------------------
# Resolution order and detection
# ---------------------------------------------------------------------------


def _meta(template=None, tokens=("<s>", "</s>"), name=None):
    md = {"tokenizer.ggml.tokens": list(tokens), "tokenizer.ggml.bos_token_id": 0, "tokenizer.ggml.eos_token_id": 1}
    if template is not None:
        md["tokenizer.chat_template"] = template
    if name:
        md["general.name"] = name
    return md


def test_resolution_order(tmp_path):
    gguf_tpl = "{% for m in messages %}GGUF:{{ m.content }}{% endfor %}"
    manifest = SimpleNamespace(name="m", chat_template="{% for m in messages %}MAN:{{ m.content }}{% endfor %}",
                               prompt_template={"text": "CARD {prompt}", "style": "placeholders"}, stop=["<x>"])
    file = tmp_path / "t.jinja"
    file.write_text("{% for m in messages %}FILE:{{ m.content }}{% endfor %}")
    msgs = [{"role": "user", "content": "q"}]
    assert resolve_template(str(file), manifest, _meta(gguf_tpl)).render(msgs) == "FILE:q"
    assert resolve_template("zephyr", manifest, _meta(gguf_tpl)).origin.startswith("--chat-template zephyr")
    assert resolve_template(None, manifest, _meta(gguf_tpl)).render(msgs) == "MAN:q"
    manifest.chat_template = None
    assert resolve_template(None, manifest, _meta(gguf_tpl)).render(msgs) == "GGUF:q"
    tpl = resolve_template(None, manifest, _meta())
    assert tpl.render(msgs) == "CARD q" and "<x>" in tpl.stop_strings()
    manifest.prompt_template = None
    assert resolve_template(None, manifest, _meta(name="Zephyr 7B Beta")).origin == "detected format zephyr"
    assert resolve_template(None, None, _meta()).origin.startswith("default format chatml")


def test_broken_template_is_loud_never_replaced(tmp_path):
    with pytest.raises(TemplateError, match="does not parse"):
        resolve_template(None, None, _meta("{% for m in messages %}{{ m.content }"))
    with pytest.raises(TemplateError, match="neither a known format nor a file"):
        resolve_template("no-such-format", None, _meta())
    bad = tmp_path / "bad.jinja"
    bad.write_bytes(b"\xff\xfe{{ x }}")
    with pytest.raises(TemplateError, match="UTF-8"):
        resolve_template(str(bad), None, _meta())
    tpl = resolve_template(None, None, _meta("{{ raise_exception('no system role') }}"))
    with pytest.raises(TemplateError, match="no system role"):
        tpl.render([{"role": "user", "content": "x"}])


@pytest.mark.parametrize("tokens, name, expected", [
    (["<|im_start|>", "<|im_end|>"], None, "chatml"),
    (["<|start_header_id|>", "<|eot_id|>"], None, "llama3"),
    (["<start_of_turn>", "<end_of_turn>"], None, "gemma"),
    (["<|user|>", "<|assistant|>", "<|end|>"], None, "phi3"),
    (["[INST]", "[/INST]"], None, "mistral"),
    (["<s>"], "Llama 2 7B Chat", "llama2"),
    (["<s>"], "vicuna-13b-v1.5", "vicuna"),
    (["<s>"], "alpaca-7b", "alpaca"),
    (["<s>"], "something else", None),
])
def test_detect_format(tokens, name, expected):
    assert detect_format(_meta(tokens=tokens, name=name)) == expected


@pytest.mark.parametrize("fmt", sorted(KNOWN_FORMATS))
def test_known_formats_render_and_have_stop_strings(fmt):
    tpl = ChatTemplate(fmt, "jinja", KNOWN_FORMATS[fmt]["template"], {"bos_token": "<s>", "eos_token": "</s>"},
                       list(KNOWN_FORMATS[fmt]["stop"]))
    out = tpl.render(MULTI)
    assert "Be brief." in out and "Hi {prompt}" in out and "Hello!" in out and out.rstrip().endswith(
        ("assistant", "<|assistant|>", "model", "[/INST]", "ASSISTANT:", "### Response:", "<|end_header_id|>"))
    assert tpl.stop_strings()


# ---------------------------------------------------------------------------
# Hostile templates: refused or bounded, quickly, with TemplateError
# ---------------------------------------------------------------------------

HOSTILE = {
    "dunder_class": "{{ messages.__class__ }}",
    "dunder_chain": "{{ messages.__class__.__mro__[1].__subclasses__() }}",
    "function_globals": "{{ raise_exception.__globals__ }}",
    "cycler_escape": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "mutating_list": "{% set x = [] %}{{ x.append(1) }}",
    "namespace_dunder": "{% set ns = namespace(__class__=1) %}",
    "huge_range": "{% for i in range(10**9) %}x{% endfor %}",
    "string_repeat": "{{ 'a' * 10**10 }}",
    "list_repeat": "{{ ([1] * 10**9) | length }}",
    "doubling_concat": "{% set ns = namespace(s='a') %}{% for i in range(80) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling_plus": "{% set ns = namespace(s='a') %}{% for i in range(80) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "doubling_block": ("{% set ns = namespace(s='a') %}{% for i in range(80) %}{% set x %}{{ ns.s }}{{ ns.s }}"
                       "{% endset %}{% set ns.s = x %}{% endfor %}"),
    "deep_recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "center_width": "{{ 'a' | center(10**10) }}",
    "percent_width": "{{ '%0999999999d' | format(1) }}",
    "str_format_width": "{{ '{:>999999999}'.format(1) }}",
    "replace_growth": "{{ ('a' * 1000000) | replace('a', 'a' * 1000) }}",
    "join_growth": "{{ (['a' * 1000000] * 1000) | join }}",
    "giant_output": "{% for i in range(100000) %}{% for j in range(100) %}{{ 'x' * 100 }}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_refused_quickly(name):
    start = time.monotonic()
    with pytest.raises(TemplateError):
        render_jinja(HOSTILE[name], [{"role": "user", "content": "hi"}])
    assert time.monotonic() - start < 30  # a generous sanity bound, not a timing test


def test_endless_loop_is_stopped_by_the_deadline(monkeypatch):
    import modelctl.cards.sandbox as t

    monkeypatch.setattr(t, "MAX_RENDER_SECONDS", 0.5)
    src = "{% set r = range(100000) | list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="longer than"):
        render_jinja(src, [])
    # the process is usable afterwards: tracing and limits were restored
    assert render_jinja("{{ messages[0].content }}", [{"role": "user", "content": "ok"}]) == "ok"


def test_template_sees_only_plain_data():
    class Sneaky(str):
        def evil(self):
            return "ran"

    with pytest.raises(TemplateError):
        render_jinja("{{ messages[0].content.evil() }}", [{"role": "user", "content": Sneaky("x")}])
