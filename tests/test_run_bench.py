"""`modelctl run` and `modelctl bench` as real subprocesses, and the Engine's generation loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelctl.runtime.engine import StopStrings, common_prefix

GOLDEN = Path(__file__).parent / "golden"


def golden_case(name: str, i: int = 0) -> dict:
    return json.loads((GOLDEN / f"model-{name}.json").read_text())["cases"][i]


# ---------------------------------------------------------------------------
# modelctl run
# ---------------------------------------------------------------------------


def test_run_greedy_json_is_llama_cpp_s_continuation(cli, smollm2_path):
    case = golden_case("smollm2")
    r = cli("run", str(smollm2_path), "-p", case["prompt"], "--temp", "0", "-n", "12", "--json", "-t", "2")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["prompt_tokens"] == len(case["prompt_ids"])    # tokenized as llama.cpp does a raw prompt
    assert data["tokens"] == case["generated_ids"][:12]
    assert data["text"].startswith(" Paris.")
    assert data["finish_reason"] == "length"
    assert set(data["timings"]) == {"prompt_tokens_per_s", "gen_tokens_per_s", "load_s"}
    assert data["timings"]["gen_tokens_per_s"] > 0


def test_run_streams_text_to_stdout_and_timings_to_stderr(cli, smollm2_path):
    r = cli("run", str(smollm2_path), "-p", "The capital of France is", "--temp", "0", "-n", "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout == " Paris.\n\n"   # exactly the 4 tokens " Paris", ".", "\n", "\n" when piped
    assert "tok/s" in r.stderr


def test_run_prompt_from_stdin_and_stop_string(cli, gemma3_path):
    r = cli("run", str(gemma3_path), "--temp", "0", "-n", "24", "--stop", ".", "--json", input="The capital of France is")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["finish_reason"] == "stop"
    assert data["text"] == " the capital of the country of France"


def test_run_seeded_sampling_is_reproducible(cli, smollm2_path):
    args = ("run", str(smollm2_path), "-p", "Once upon a time", "-n", "8", "--seed", "7", "--temp", "1.0", "--json")
    a, b = cli(*args), cli(*args)
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["tokens"] == json.loads(b.stdout)["tokens"]


def test_run_prompt_longer_than_the_context_is_an_error(cli, smollm2_path):
    r = cli("run", str(smollm2_path), "-p", "one two three four five six seven eight", "--ctx", "4")
    assert r.returncode == 1
    assert "context holds 4" in r.stderr and "Traceback" not in r.stderr


def test_run_missing_model_is_not_found(cli, tmp_path):
    r = cli("run", str(tmp_path / "nope.gguf"), "-p", "hi")
    assert r.returncode == 4
    assert "nope.gguf" in r.stderr


def test_run_memory_is_the_mapped_file_plus_small_buffers(qwen_path):
    """Peak RSS ~ file size + KV cache + small buffers: no float32 copy of any weight (the embedding alone
    would be 544 MB as float32)."""
    code = ("import sys\nfrom modelctl.cli.app import main\ntry:\n"
            f"    main(['run', {str(qwen_path)!r}, '-p', 'The capital of France is', '--temp', '0', '-n', '8', "
            "'--ctx', '256', '-t', '2'])\nfinally:\n"
            "    sys.stderr.write(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    peak = int(r.stderr.split("VmHWM:")[1].split()[0]) * 1024      # the child's own peak resident set
    file_size = qwen_path.stat().st_size
    kv = 24 * 256 * 2 * 128 * 2 * 2           # layers * ctx * kv_heads * head_dim * (K, V) * f16
    print(f"peak RSS {peak / 2**20:.0f} MiB for a {file_size / 2**20:.0f} MiB file")
    assert peak < file_size + kv + 200 * 2**20


# ---------------------------------------------------------------------------
# modelctl bench
# ---------------------------------------------------------------------------


def test_bench_json_contract_and_profile(cli, smollm2_path):
    r = cli("bench", str(smollm2_path), "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--no-reference",
            "--profile", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert {"pp_tokens_per_s", "tg_tokens_per_s", "threads", "n_prompt", "n_gen", "reference"} <= set(data)
    assert data["reference"] is None and data["threads"] == 2 and (data["n_prompt"], data["n_gen"]) == (16, 4)
    assert data["pp_tokens_per_s"] > 0 and data["tg_tokens_per_s"] > 0
    assert len(data["tg"]["runs"]) == 2
    ops = {row["op"] for row in data["profile"]["tg"]}
    assert {"attention", "matmul_qkv", "matmul_output"} <= ops


def test_bench_human_table_without_llama_cpp(cli, smollm2_path):
    r = cli("bench", str(smollm2_path), "-p", "8", "-n", "2", "-r", "1")
    assert r.returncode == 0, r.stderr
    assert "modelctl" in r.stdout and "pp8 tok/s" in r.stdout
    if "llama.cpp" not in r.stdout:   # this venv has no llama_cpp: said plainly
        assert "llama.cpp not available" in r.stderr


def test_bench_broken_reference_interpreter_is_a_clear_error(cli, smollm2_path, tmp_path):
    r = cli("bench", str(smollm2_path), "-p", "8", "-n", "2", "-r", "1", "--reference-python", sys.executable)
    assert r.returncode == 1
    assert "llama.cpp reference failed" in r.stderr and "Traceback" not in r.stderr


def test_bench_needs_something_to_measure(cli, smollm2_path):
    r = cli("bench", str(smollm2_path), "-p", "0", "-n", "0")
    assert r.returncode == 2


# ---------------------------------------------------------------------------
# the Engine in-process: prefix reuse, cancellation, stop strings
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(smollm2_path_module):
    from modelctl.runtime.engine import Engine

    e = Engine.load(smollm2_path_module, n_ctx=128, n_threads=2)
    yield e
    e.close()


@pytest.fixture(scope="module")
def smollm2_path_module():
    import fetch

    return fetch.model_path("smollm2")


def test_engine_reuses_the_cached_prefix(engine):
    from modelctl.runtime.sampler import SamplingParams

    greedy = SamplingParams(temperature=0)
    ids = engine.tokenize("The capital of France is")
    first = engine.generate(ids, 6, greedy)
    longer = ids + first.tokens[:3]
    second = engine.generate(longer, 3, greedy)
    assert second.reused_tokens == len(longer) - 1
    assert second.timings.prompt_tokens == 1
    assert second.tokens == first.tokens[3:6]
    engine.reset()
    fresh = engine.generate(longer, 3, greedy)
    assert fresh.reused_tokens == 0 and fresh.tokens == second.tokens


def test_engine_cancel_stops_after_the_current_token(engine):
    from modelctl.runtime.sampler import SamplingParams

    pieces = []

    def on_text(t):
        pieces.append(t)
        engine.cancel()

    g = engine.generate(engine.tokenize("Once upon a time"), 20, SamplingParams(temperature=0), on_text=on_text)
    assert g.finish_reason == "cancelled"
    assert 1 <= len(g.tokens) <= 2 and g.text == "".join(pieces)


def test_engine_eog_token_ends_generation(engine):
    from modelctl.runtime.sampler import SamplingParams

    # the reply already begun: "Say hi" alone starts at a near-tie (llama.cpp's top-2 margin 0.07)
    prompt = engine.tokenize("<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nHi!", parse_special=True)
    g = engine.generate(prompt, 60, SamplingParams(temperature=0))
    assert g.finish_reason == "eog"
    assert "<|im_end|>" not in g.text and g.text.strip()


def test_stop_strings_hold_back_partial_matches():
    s = StopStrings(["</s>", "\n\n"])
    assert s.push("Hello <") == ("Hello ", False)
    assert s.push("/") == ("", False)
    assert s.push("x") == ("</x", False)
    assert s.push("end\n") == ("end", False)
    assert s.push("\nmore") == ("", True)
    assert StopStrings([]).push("abc") == ("abc", False)


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2
