"""`modelctl chat`: the REPL over a real pseudo-terminal, one-shot answers for scripts, --print-prompt.

All with the real SmolLM2-135M model (fixture ``smollm2_path``) and small ``-n`` so they stay quick.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from modelctl.chat import Conversation, load_conversation, save_conversation
from modelctl.core.errors import UsageError

GOLDEN = json.loads((Path(__file__).parent / "golden" / "templates" / "models.json").read_text(encoding="utf-8"))
CONV = GOLDEN["conversations"]
QUESTION = "What is the capital of France? Answer in one word."   # every greedy step has a top-2 margin >= 1


def _golden_output(model: str, conversation: str) -> str:
    for case in GOLDEN["models"][model]["cases"]:
        if case["conversation"] == conversation and case["add_generation_prompt"]:
            return case["output"]
    raise KeyError(conversation)


# ---------------------------------------------------------------------------
# --print-prompt: the exact prompt, equal to transformers' rendering of the GGUF's template
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("model, conversation", [("smollm2", "system_user"), ("qwen", "system_user"),
                                                 ("gemma3", "user")])
def test_print_prompt_matches_transformers(cli, request, model, conversation):
    path = request.getfixturevalue(f"{model}_path")
    msgs = CONV[conversation]
    args = ["chat", str(path), "--print-prompt", "-p", msgs[-1]["content"]]
    if msgs[0]["role"] == "system":
        args += ["--system", msgs[0]["content"]]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == _golden_output(model, conversation)
    assert "--- template:" in r.stderr and "--- prompt (" in r.stderr


def test_print_prompt_json_and_template_choice(cli, smollm2_path, tmp_path):
    r = cli("chat", str(smollm2_path), "--print-prompt", "-p", "Hi", "--chat-template", "llama3", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["template_origin"].startswith("--chat-template llama3")
    assert data["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert data["stop"] == ["<|eot_id|>"] and data["prompt_tokens"] > 5
    hostile = tmp_path / "evil.jinja"
    hostile.write_text("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    r = cli("chat", str(smollm2_path), "--print-prompt", "-p", "Hi", "--chat-template", str(hostile))
    assert r.returncode == 1 and "refused" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_default_model_is_chosen_for_this_machine_from_what_is_stored(cli, qwen_path, tmp_path):
    """No MODEL: the curated entry chosen for this machine; here a better one would need the (unreachable) Hub
    and the 0.5B Qwen is already stored, so it is used with a note saying so (no network)."""
    stored = tmp_path / "mc" / "manifests" / "qwen2.5-coder-0.5b-instruct" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    stored.parent.mkdir(parents=True)
    stored.symlink_to(qwen_path)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "MODELCTL_CACHE": str(tmp_path / "mc"),
           "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1", "MODELCTL_MEM_BANDWIDTH": "1000GB"}
    r = cli("chat", "--print-prompt", "-p", "Hi", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["template_origin"] == "GGUF tokenizer.chat_template"
    assert data["prompt"].endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "using qwen2.5-coder-0.5b-instruct, already downloaded" in r.stderr
    assert "would suit this machine better" in r.stderr and "modelctl chat NAME" in r.stderr
    # the command, verbatim but for a short -n: only the answer on stdout
    r = cli("chat", "-n", "8", input=QUESTION + "\n", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and r.stdout.count("\n") <= 2
    for noise in (">>>", "modelctl", "<|im_end|>", "<|im_start|>", "warning"):
        assert noise not in r.stdout


# ---------------------------------------------------------------------------
# scripting: piped stdin and -p
# ---------------------------------------------------------------------------


def test_json_one_shot_same_seed_same_answer_and_gpu_layers_notice(cli, smollm2_path):
    args = ("chat", str(smollm2_path), "-p", QUESTION, "-n", "5", "--temp", "0.9", "--seed", "7", "--json",
            "--gpu-layers", "99", "--ctx", "512", "--system", "Answer briefly.")
    first, second = cli(*args), cli(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    data = json.loads(first.stdout)
    assert isinstance(data["answer"], str) and data["answer"]
    assert 0 < len(data["tokens"]) <= 5
    assert data["finish_reason"] in ("length", "eog", "stop")
    assert {"prompt_tokens_per_s", "gen_tokens_per_s"} <= set(data["timings"])
    assert "no GPU backend" in first.stderr and "CPU" in first.stderr
    assert json.loads(second.stdout)["tokens"] == data["tokens"]


@pytest.mark.parametrize("args, message", [
    (["-p", "x", "-n", "-5"], "-n -5"),
    (["-p", "x", "--ctx", "4"], "too small"),
    (["-p", "x", "--threads", "0"], "at least 1"),
])
def test_bad_options_one_line_errors(cli, smollm2_path, args, message):
    r = cli("chat", str(smollm2_path), *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_empty_stdin_and_missing_model(cli, smollm2_path, tmp_path):
    r = cli("chat", str(smollm2_path), input="")
    assert r.returncode == 2 and "standard input is empty" in r.stderr
    r = cli("chat", str(tmp_path / "nope.gguf"), "-p", "x")
    assert r.returncode == 4 and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------
# conversations as JSON
# ---------------------------------------------------------------------------


def test_conversation_save_load_roundtrip_and_bad_files(tmp_path):
    conv = Conversation("Be brief.", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    path = save_conversation(conv, str(tmp_path / "c.json"), {"temperature": 0.2})
    back, sampling = load_conversation(str(path))
    assert back == conv and sampling == {"temperature": 0.2}
    (tmp_path / "bad.json").write_text('{"format": "modelctl-chat", "messages": [{"role": "tool"}]}')
    with pytest.raises(UsageError, match="message 0"):
        load_conversation(str(tmp_path / "bad.json"))
    (tmp_path / "junk.json").write_bytes(b"\x00\xff")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_conversation(str(tmp_path / "junk.json"))


def test_drop_oldest_turn_keeps_system():
    conv = Conversation("S", [{"role": "user", "content": "1"}, {"role": "assistant", "content": "a"},
                              {"role": "user", "content": "2"}])
    assert conv.drop_oldest_turn() == 2
    assert conv.messages() == [{"role": "system", "content": "S"}, {"role": "user", "content": "2"}]


# ---------------------------------------------------------------------------
# the REPL through a real pseudo-terminal
# ---------------------------------------------------------------------------

PROMPT = ">>> "


def _spawn(model: Path, *args: str, tmp_path: Path) -> pexpect.spawn:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "HOME": str(tmp_path),
           "MODELCTL_HISTORY": str(tmp_path / "history")}
    env.pop("MODELCTL_DEBUG", None)
    child = pexpect.spawn(sys.executable, ["-m", "modelctl", "chat", str(model), *args], env=env,
                          encoding="utf-8", timeout=120, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    return child


def _ask(child: pexpect.spawn, text: str) -> str:
    child.sendline(text)
    child.expect_exact(PROMPT)
    return child.before


def test_repl_question_system_clear_stats_bye(smollm2_path, tmp_path):
    child = _spawn(smollm2_path, "-n", "8", "--temp", "0", "--verbose", "--system", "You are a helpful assistant.",
                   tmp_path=tmp_path)
    reply = _ask(child, QUESTION)
    assert "Paris" in reply and "reply:" in reply          # streamed answer, then --verbose timings
    out = _ask(child, "/system You are a pirate. Always say Arr.")
    assert "system prompt set" in out
    out = _ask(child, "/stats")
    assert "context:" in out and "system prompt: yes" in out and "1 turn(s)" in out
    out = _ask(child, "/set temp 0.2")
    assert "temperature = 0.2" in out
    out = _ask(child, "/set bogus 1")
    assert "unknown option" in out
    out = _ask(child, "/clear")
    assert "conversation cleared" in out
    out = _ask(child, "/stats")
    assert "0 turn(s)" in out and "system prompt: yes" in out
    reply = _ask(child, '"""\nSay hello\nin two words.\n"""')
    assert reply.strip()
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Say hello" in (tmp_path / "history").read_text()


def test_repl_ctrl_c_stops_reply_then_ctrl_d_exits(smollm2_path, tmp_path):
    child = _spawn(smollm2_path, "-n", "400", "--temp", "0.8", "--seed", "3", tmp_path=tmp_path)
    question = "Write a very long story about a dragon who learns to cook."
    child.sendline(question)
    child.expect_exact(question + "\r\n")            # the terminal's echo of the input
    child.expect(r"\w+ \w+ \w+ \w+")                  # the reply is streaming
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact(PROMPT)
    out = _ask(child, "/stats")                      # still alive, the partial reply is kept
    assert "1 turn(s)" in out
    path = tmp_path / "conv.json"
    out = _ask(child, f"/save {path}")
    assert "saved 2 message(s)" in out
    data = json.loads(path.read_text())
    assert data["messages"][0]["role"] == "user" and data["messages"][1]["role"] == "assistant"
    out = _ask(child, "/clear")
    out = _ask(child, "/set temp 0.3")
    out = _ask(child, f"/load {path}")
    assert "loaded 2 message(s)" in out
    out = _ask(child, "/set")
    assert "temperature 0.8" in out                 # the saved settings came back
    child.sendintr()                                 # Ctrl-C at the prompt: a hint, not an exit
    child.expect_exact("Ctrl-D or /bye")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_repl_drops_oldest_turns_when_context_is_full(smollm2_path, tmp_path):
    child = _spawn(smollm2_path, "--ctx", "64", "-n", "6", "--temp", "0", "--system", "Be brief.",
                   tmp_path=tmp_path)
    long_question = "Please list some fruits that are red, some that are yellow, and some that are green."
    seen = _ask(child, long_question)
    assert "context full" not in seen
    seen = _ask(child, long_question.replace("fruits", "flowers"))
    assert "dropped the 2 oldest message(s)" in seen and "the system prompt stays" in seen
    out = _ask(child, "/stats")
    assert "system prompt: yes" in out and "1 turn(s)" in out
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_card_prompt_template_from_a_user_manifest(cli, gemma3_path, tmp_path):
    """A manifest whose model file has no chat template: the card's placeholder template is used."""
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "gemma-card.yaml").write_text(f"""\
schema: 1
name: gemma-card
prompt_template:
  text: "<start_of_turn>user\\n{{prompt}}<end_of_turn>\\n<start_of_turn>model\\n"
  style: placeholders
stop: ["<end_of_turn>"]
files:
  - name: {gemma3_path.name}
sources:
  - kind: local
    path: {gemma3_path}
    file: {gemma3_path.name}
""")
    env = {"MODELCTL_MANIFESTS": str(mdir), "MODELCTL_CACHE": str(tmp_path / "cache"),
           "HF_HUB_CACHE": str(tmp_path / "hub")}
    r = cli("chat", "gemma-card", "--print-prompt", "-p", "Hi {there}", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["template_origin"] == "manifest gemma-card prompt_template (card)"
    assert data["prompt"] == "<start_of_turn>user\nHi {there}<end_of_turn>\n<start_of_turn>model\n"
    assert data["stop"][0] == "<end_of_turn>"


@pytest.mark.parametrize("template, message", [
    ("{{ messages.__class__.__mro__[1].__subclasses__() }}", "refused: unsafe"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}", "refused"),
    ("{% for m in messages %}{{ m.content }", "does not parse"),
])
def test_hostile_template_inside_a_gguf_is_refused(cli, tmp_path, template, message):
    import gguf

    path = tmp_path / "hostile.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<s>", "</s>", "a"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = cli("chat", str(path), "--print-prompt", "-p", "Hi")
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_plan_settings_from_the_estimator(smollm2_path):
    from modelctl.chat import plan_settings
    from modelctl.gguf.reader import read_header
    from modelctl.fit.hardware import GPU, Machine

    header = read_header(smollm2_path)
    roomy = Machine(64 << 30, 60 << 30)
    plan = plan_settings(header, machine=roomy)
    assert plan.n_ctx == 4096 and plan.planned_gpu_layers == 0 and not plan.notes
    tight = Machine(1 << 30, plan.ram_bytes - (1 << 20))      # just below what ctx 4096 needs
    small = plan_settings(header, machine=tight)
    assert small.n_ctx < 4096 and small.ram_bytes <= tight.ram_available_bytes
    gpu = Machine(64 << 30, 60 << 30, [GPU("Test GPU", 8 << 30, 8 << 30, "nvidia")])
    plan = plan_settings(header, machine=gpu, gpu_layers=12, ctx=2048)
    assert plan.n_ctx == 2048 and plan.planned_gpu_layers == 31   # 30 blocks + the output layer
    assert any("no GPU backend" in n and "on the CPU" in n for n in plan.notes)
    plan = plan_settings(header, machine=roomy, ctx=16384)
    assert any("beyond the model's trained context" in n for n in plan.notes)
