"""The runtime tokenizer against llama.cpp: its own test vectors and golden ids made with it.

- every ``ggml-vocab-*.gguf`` with ``.inp``/``.out`` files in llama.cpp's models/ folder: each
  input tokenized as llama.cpp's test-tokenizer-0 does (``add_special=False``,
  ``parse_special=False``) gives exactly the expected ids;
- tests/golden/tokens/*.json (scripts/make_golden_tokens.py, run with llama.cpp): the three
  real models and the vocab files on a multilingual corpus, with and without BOS/EOS and
  special-token parsing; detokenized text; every piece; BOS/EOS/EOT and the EOG set;
- streaming decode, round trips, the ``modelctl tokenize`` command, bad vocabularies.
"""

from __future__ import annotations

import hashlib
import json
import struct
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelctl.core.errors import GGUFError, RuntimeModelError
from modelctl.gguf.reader import read_header
from modelctl.runtime.tokenizer import EOT_TEXTS, StreamDecoder, Tokenizer

GOLDEN = Path(__file__).parent / "golden"
CORPUS = json.loads((GOLDEN / "tokenizer_corpus.json").read_text(encoding="utf-8"))
FUZZ = json.loads((GOLDEN / "tokenizer_fuzz.json").read_text(encoding="utf-8"))
GOLDEN_FILES = sorted((GOLDEN / "tokens").glob("*.json"))

# Vocabularies llama.cpp ships with test vectors; test_every_vocab_test_file_is_covered checks this
# list against the folder, so a new .inp file cannot go untested.
VOCABS_WITH_TESTS = [
    "bert-bge", "command-r", "deepseek-coder", "deepseek-llm", "falcon", "gemma-4", "gpt-2", "llama-bpe",
    "llama-spm", "mpt", "phi-3", "qwen2", "qwen35", "refact", "starcoder",
]
REAL_MODELS = {"smollm2": "smollm2_path", "gemma3": "gemma3_path", "qwen": "qwen_path"}
SEP = "\n__ggml_vocab_test__\n"

_loaded: dict[str, Tokenizer] = {}


def load(path: Path) -> Tokenizer:
    """One Tokenizer per vocabulary file for the whole module (loading 262k-token vocabularies is slow)."""
    key = str(path)
    if key not in _loaded:
        _loaded[key] = Tokenizer.from_header(read_header(path))
    return _loaded[key]


def read_vocab_tests(base: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's format: inputs separated by SEP (the file ends with one), ids one line per input."""
    raw = Path(str(base) + ".inp").read_bytes().decode("utf-8")
    outs = Path(str(base) + ".out").read_text(encoding="utf-8").split("\n")
    inputs, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    assert len(outs) >= len(inputs)
    return [(text, [int(x) for x in out.split()]) for text, out in zip(inputs, outs)]


def tokenizer_for(request, llama_cpp_models: Path, golden: dict, name: str) -> Tokenizer:
    if name in REAL_MODELS:
        return load(request.getfixturevalue(REAL_MODELS[name]))
    return load(llama_cpp_models / golden["source"])


def ids(s: str) -> list[int]:
    return [int(x) for x in s.split()]


# --- llama.cpp's own test vectors ---------------------------------------------------


def test_every_vocab_test_file_is_covered(llama_cpp_models):
    found = sorted(p.name[len("ggml-vocab-"):-len(".gguf.inp")] for p in llama_cpp_models.glob("ggml-vocab-*.gguf.inp"))
    assert found == sorted(VOCABS_WITH_TESTS)


@pytest.mark.parametrize("name", VOCABS_WITH_TESTS)
def test_llama_cpp_vocab_vectors(llama_cpp_models, name):
    base = llama_cpp_models / f"ggml-vocab-{name}.gguf"
    tok = load(base)
    cases = read_vocab_tests(base)
    assert len(cases) >= 40
    wrong = [(text, want, got) for text, want in cases if (got := tok.encode(text)) != want]
    assert not wrong, "\n".join(f"{t!r}: want {w} got {g}" for t, w, g in wrong[:5])


# --- golden ids from llama.cpp --------------------------------------------------------


@pytest.mark.parametrize("golden_file", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_ids(request, llama_cpp_models, golden_file):
    golden = json.loads(golden_file.read_text(encoding="utf-8"))
    tok = tokenizer_for(request, llama_cpp_models, golden, golden_file.stem)
    assert tok.n_vocab == golden["n_vocab"]
    assert (tok.bos_id, tok.eos_id) == (golden["bos"], golden["eos"])
    # Without eot_token_id in the file llama.cpp takes the first EOT-looking token in hash-map order;
    # we take the first in list order.  Either way it is one of the EOG tokens, which is what matters.
    if tok.eot_id != golden["eot"]:
        assert tok.eot_id in golden["eog"] and golden["eot"] in golden["eog"]
        assert tok.token_text(golden["eot"]) in EOT_TEXTS
    assert (tok.add_bos, tok.add_eos) == (golden["add_bos"], golden["add_eos"])
    assert sorted(tok.eog_ids) == golden["eog"]
    wrong = []
    for case in golden["cases"]:
        text = CORPUS[case["text"]]
        for variant, (add, parse) in {"plain": (False, False), "special": (True, False), "parsed": (True, True)}.items():
            got = tok.encode(text, add_special=add, parse_special=parse)
            if got != ids(case[variant]):
                wrong.append(f"{variant} {text!r}: want {ids(case[variant])} got {got}")
        if tok.decode_bytes(ids(case["plain"])).hex() != case["detok_plain"]:
            wrong.append(f"detokenize {text!r}: {tok.decode_bytes(ids(case['plain']))!r}")
        if tok.decode_bytes(ids(case["parsed"]), special=True, remove_special=True).hex() != case["detok_parsed"]:
            wrong.append(f"detokenize special {text!r}")
    for (add, parse), digests in zip(((False, False), (True, True)), golden["fuzz"]):
        for text, want in zip(FUZZ, digests):
            got = tok.encode(text, add_special=add, parse_special=parse)
            if hashlib.sha256(" ".join(map(str, got)).encode()).hexdigest()[:16] != want:
                wrong.append(f"fuzz add_special={add} parse_special={parse} {text!r}: got {got}")
    for tid, (with_special, without) in golden["pieces"].items():
        tid = int(tid)
        if (tok.token_piece(tid).hex(), tok.token_piece(tid, special=False).hex()) != (with_special, without):
            wrong.append(f"piece {tid}: {tok.token_piece(tid)!r}")
    assert not wrong, "\n".join(wrong[:8])


PRETOK_GOLDEN = json.loads((GOLDEN / "tokens-pretokenizers.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _metadata(path: Path) -> dict:
    return read_header(path).metadata


@pytest.mark.parametrize("pre", sorted(PRETOK_GOLDEN["digests"]))
def test_pretokenizer_golden(llama_cpp_models, pre):
    """Every pre-tokenizer regex set, on GPT-2's vocabulary relabelled with that tokenizer.ggml.pre
    (scripts/make_golden_tokens.py had llama.cpp tokenize the same relabelled file)."""
    md = {**_metadata(llama_cpp_models / PRETOK_GOLDEN["base"]), "tokenizer.ggml.pre": pre}
    tok = Tokenizer(model="gpt2", pre=pre, tokens=md["tokenizer.ggml.tokens"], scores=None,
                    token_types=md["tokenizer.ggml.token_type"], merges=md["tokenizer.ggml.merges"], metadata=md)
    wrong = []
    for text, want in zip(CORPUS + FUZZ, PRETOK_GOLDEN["digests"][pre]):
        got = tok.encode(text)
        if hashlib.sha256(" ".join(map(str, got)).encode()).hexdigest()[:10] != want:
            wrong.append(f"{text!r}: {got}")
    assert not wrong, "\n".join(wrong[:5])


def test_pretokenizer_golden_covers_every_regex_set():
    from modelctl.runtime import pretokenize

    covered = {pretokenize.PRE_TOKENIZERS[name][0] for name in PRETOK_GOLDEN["digests"]}
    byte_level = {name for name, (_, byte_encode) in pretokenize.REGEX_SETS.items() if byte_encode}
    assert covered == byte_level      # gemma4 (raw UTF-8) is covered by its own test vocabulary


def test_golden_covers_the_real_models_and_corpus_is_multilingual():
    names = {p.stem for p in GOLDEN_FILES}
    assert set(REAL_MODELS) <= names
    assert {"vocab-aquila", "vocab-baichuan", "vocab-gpt-neox"} <= names   # no test vectors upstream
    text = "".join(CORPUS)
    for needle in ("\u200d", "中文", "한국어", "مرحبا", "שלום", "नमस्ते", "def ", "1234567890", "\u3000", "   "):
        assert needle in text


# --- vocab facts ----------------------------------------------------------------------


def test_real_model_families(smollm2_path, gemma3_path, qwen_path):
    smol, gemma, qwen = load(smollm2_path), load(gemma3_path), load(qwen_path)
    assert (smol.kind, smol.pre) == ("bpe", "smollm")
    assert (qwen.kind, qwen.pre) == ("bpe", "qwen2")
    assert gemma.kind == "spm" and gemma.n_vocab == 262144 and not gemma.add_space_prefix
    assert qwen.token_text(qwen.eos_id) == "<|im_end|>"
    assert {qwen.token_text(i) for i in qwen.eog_ids} >= {"<|im_end|>", "<|endoftext|>"}
    assert {gemma.token_text(i) for i in gemma.eog_ids} >= {"<eos>", "<end_of_turn>"}
    assert gemma.add_bos and gemma.bos_id == 2


def test_special_tokens_only_parsed_when_asked(qwen_path):
    tok = load(qwen_path)
    text = "<|im_start|>user\nhi<|im_end|>"
    parsed = tok.encode(text, parse_special=True)
    plain = tok.encode(text)
    assert parsed[0] == tok.token_id("<|im_start|>") and parsed[-1] == tok.token_id("<|im_end|>")
    assert tok.token_id("<|im_start|>") not in plain and len(plain) > len(parsed)
    assert tok.decode(plain) == text


def test_spm_space_prefix_and_byte_fallback(llama_cpp_models):
    tok = load(llama_cpp_models / "ggml-vocab-llama-spm.gguf")
    assert tok.encode("Hello", add_special=True)[0] == tok.bos_id
    assert tok.token_text(tok.encode("Hello")[0]).startswith("\u2581")   # the space prefix
    emoji = tok.encode("\U0001F9E0")          # not in the 32k vocab: four byte tokens
    assert [tok.token_text(i) for i in emoji] == ["\u2581", "<0xF0>", "<0x9F>", "<0xA7>", "<0xA0>"]
    assert tok.decode(emoji) == "\U0001F9E0"


# --- decoding and streaming ---------------------------------------------------------


def stream(tok: Tokenizer, token_ids: list[int]) -> list[str]:
    dec = StreamDecoder(tok)
    parts = [dec.feed(i) for i in token_ids]
    parts.append(dec.flush())
    return parts


def test_stream_holds_partial_characters(llama_cpp_models):
    tok = load(llama_cpp_models / "ggml-vocab-llama-spm.gguf")
    token_ids = tok.encode("a \U0001F9E0 b")
    parts = stream(tok, token_ids)
    assert all("\ufffd" not in p for p in parts)
    assert "\U0001F9E0" in parts           # arrives whole, once its last byte is there
    assert "".join(parts) == " a \U0001F9E0 b"   # pieces as llama.cpp streams them (prefix space kept)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_stream_and_round_trip_property(qwen_path, gemma3_path, llama_cpp_models, text):
    """Qwen's byte-level BPE and SentencePiece with byte fallback (Gemma 3, Llama) are lossless:
    decode(encode(t)) == t, and the stream never shows U+FFFD for a character split across tokens."""
    for tok in (load(qwen_path), load(gemma3_path), load(llama_cpp_models / "ggml-vocab-llama-spm.gguf")):
        token_ids = tok.encode(text)
        assert tok.decode(token_ids) == text
        parts = stream(tok, token_ids)
        assert "".join(parts) == (" " + text if tok.add_space_prefix and text else text)
        if "\ufffd" not in text:
            assert all("\ufffd" not in p for p in parts)


def test_stream_flush_shows_incomplete_tail(gemma3_path):
    tok = load(gemma3_path)
    byte_f0 = tok.token_id("<0xF0>")
    dec = StreamDecoder(tok)
    assert dec.feed(byte_f0) == ""
    assert dec.flush() == "\ufffd"


# --- bad vocabularies ------------------------------------------------------------------


class _Header:
    def __init__(self, md: dict):
        self.metadata = md
        self.source = "test.gguf"


def test_bad_vocabularies_are_refused():
    with pytest.raises(GGUFError, match="no tokenizer"):
        Tokenizer.from_header(_Header({}))
    with pytest.raises(GGUFError, match="tokens"):
        Tokenizer.from_header(_Header({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": [1, 2]}))
    with pytest.raises(GGUFError, match="merges"):
        Tokenizer.from_header(_Header({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]}))
    with pytest.raises(RuntimeModelError, match="pre-tokenizer"):
        Tokenizer.from_header(_Header({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"],
                                       "tokenizer.ggml.merges": [], "tokenizer.ggml.pre": "nope"}))
    with pytest.raises(RuntimeModelError, match="not supported"):
        Tokenizer.from_header(_Header({"tokenizer.ggml.model": "rwkv", "tokenizer.ggml.tokens": ["a"]}))
    with pytest.raises(GGUFError, match="scores"):
        Tokenizer.from_header(_Header({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "b"],
                                       "tokenizer.ggml.scores": [0.0]}))


# --- the command ----------------------------------------------------------------------


def test_cli_json_matches_golden(cli, llama_cpp_models):
    golden = json.loads((GOLDEN / "tokens" / "vocab-llama-bpe.json").read_text(encoding="utf-8"))
    case = golden["cases"][CORPUS.index("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")]
    text = CORPUS[case["text"]]
    vocab = str(llama_cpp_models / "ggml-vocab-llama-bpe.gguf")
    res = cli("tokenize", vocab, text, "--json", "--add-special", "--parse-special")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["ids"] == ids(case["parsed"])
    assert data["pieces"][1] == "<|begin_of_text|>" and len(data["pieces"]) == len(data["ids"])
    plain = json.loads(cli("tokenize", vocab, text, "--json").stdout)
    assert plain["ids"] == ids(case["plain"])


def test_cli_reads_stdin_and_prints_pieces(cli, smollm2_path):
    res = cli("tokenize", str(smollm2_path), "-", input="Hello world\n")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [str(i) for i in load(smollm2_path).encode("Hello world\n")]
    assert "'Hello'" in lines[0] and "' world'" in lines[1] and "'\\n'" in lines[2]
    assert "3 tokens" in res.stderr
    res = cli("tokenize", str(smollm2_path), "--json", input="piped")
    data = json.loads(res.stdout)
    assert "".join(data["pieces"]) == "piped" and data["ids"] == load(smollm2_path).encode("piped")


def test_cli_errors(cli, tmp_path, llama_cpp_models):
    res = cli("tokenize", str(tmp_path / "missing.gguf"), "hi")
    assert res.returncode == 4 and "missing.gguf" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))        # a valid header with no tokenizer
    res = cli("tokenize", str(bad), "hi")
    assert res.returncode == 6 and "tokenizer" in res.stderr and "Traceback" not in res.stderr
    res = cli("tokenize", str(llama_cpp_models / "ggml-vocab-nomic-bert-moe.gguf"), "hi")
    assert res.returncode == 1 and "'t5' is not supported" in res.stderr


def test_cli_without_text_on_a_terminal_is_a_usage_error(llama_cpp_models):
    import os
    import sys

    import pexpect

    env = {**os.environ, "NO_COLOR": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "modelctl", "tokenize",
                                           str(llama_cpp_models / "ggml-vocab-gpt-2.gguf")],
                          env=env, encoding="utf-8", timeout=60)
    child.expect("no text to tokenize")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
