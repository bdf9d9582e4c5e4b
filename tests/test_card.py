"""`modelctl card`: the seed cards, the other publishing styles, bad input, the CLI contract."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from modelctl.cards.card import parse_card, read_card_file
from modelctl.core.errors import CardError
from modelctl.cards.manifest import manifest_from_dict

DATA = Path(__file__).parent / "data" / "cards"
ZEPHYR = "TheBloke--zephyr-7B-beta-GGUF.README.md"
CAUSAL = "tastypear--CausalLM-7B-DPO-alpha-GGUF.README.md"
CONTRACT_KEYS = ["repo", "model_name", "model_creator", "base_model", "license", "model_type",
                 "prompt_template", "files", "warnings"]
FILE_KEYS = ["name", "quant", "bits", "size_bytes", "max_ram_bytes", "use_case", "parts"]

# (name, quant, bits, size GB, max RAM GB) as the Zephyr card's table gives them.
ZEPHYR_FILES = [
    ("Q2_K", 2, "3.08", "5.58"), ("Q3_K_S", 3, "3.16", "5.66"), ("Q3_K_M", 3, "3.52", "6.02"),
    ("Q3_K_L", 3, "3.82", "6.32"), ("Q4_0", 4, "4.11", "6.61"), ("Q4_K_S", 4, "4.14", "6.64"),
    ("Q4_K_M", 4, "4.37", "6.87"), ("Q5_0", 5, "5.00", "7.50"), ("Q5_K_S", 5, "5.00", "7.50"),
    ("Q5_K_M", 5, "5.13", "7.63"), ("Q6_K", 6, "5.94", "8.44"), ("Q8_0", 8, "7.70", "10.20"),
]


def gb(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 10**9 + int(frac.ljust(9, "0"))


def card_json(cli, *args) -> dict:
    r = cli("card", *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # stdout is only JSON


def test_zephyr_seed_card(cli, shared_cards):
    card = card_json(cli, str(shared_cards / ZEPHYR))
    assert all(k in card for k in CONTRACT_KEYS)
    assert card["repo"] == "TheBloke/zephyr-7B-beta-GGUF"
    assert (card["model_name"], card["model_creator"], card["base_model"], card["license"], card["model_type"],
            card["quantizer"]) == ("Zephyr 7B Beta", "Hugging Face H4", "HuggingFaceH4/zephyr-7b-beta", "mit",
                                   "mistral", "TheBloke")
    assert card["prompt_template"] == {"text": "<|system|>\n</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n",
                                       "style": "placeholders"}
    assert card["stop"] == ["</s>"]
    assert card["sampling"] == {"temperature": 0.7, "repeat_penalty": 1.1}  # the card's ./main example
    assert card["quant_notes"] == {"Q2_K": 2.5625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625}
    got = [(f["name"], f["quant"], f["bits"], f["size_bytes"], f["max_ram_bytes"]) for f in card["files"]]
    want = [(f"zephyr-7b-beta.{q}.gguf", q, bits, gb(size), gb(ram)) for q, bits, size, ram in ZEPHYR_FILES]
    assert got == want
    assert all(list(f)[:len(FILE_KEYS)] == FILE_KEYS and f["parts"] == [] for f in card["files"])
    q4 = card["files"][6]
    assert q4["use_case"] == "medium, balanced quality - recommended" and q4["bpw"] == 4.5
    assert card["example_file"] == "zephyr-7b-beta.Q4_K_M.gguf"
    assert card["warnings"] == []


def test_causallm_seed_card_uses_link_targets(cli, shared_cards):
    card = card_json(cli, str(shared_cards / CAUSAL))
    assert card["repo"] == "tastypear/CausalLM-7B-DPO-alpha-GGUF"
    assert (card["model_name"], card["model_creator"], card["base_model"], card["license"], card["model_type"],
            card["quantizer"]) == ("CausalLM 7B-DPO-alpha", "CausalLM", "CausalLM/7B-DPO-alpha", "wtfpl",
                                   "llama", "tastypear")
    # The link TEXT says causallm_7b.Q4_K_M.gguf; the repo holds the link TARGET.
    assert [(f["name"], f["quant"], f["bits"], f["size_bytes"], f["max_ram_bytes"], f["use_case"])
            for f in card["files"]] == [
        ("causallm_7b-dpo-alpha.Q4_K_M.gguf", "Q4_K_M", 4, 4_770_000_000, None, None),
        ("causallm_7b-dpo-alpha.Q5_K_S.gguf", "Q5_K_S", 5, 5_400_000_000, None, None),
        ("causallm_7b-dpo-alpha.Q5_K_M.gguf", "Q5_K_M", 5, 5_530_000_000, None, None),
    ]
    assert card["prompt_template"] == {
        "text": "<|im_start|>system\n{system_message}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"
                "<|im_start|>assistant\n",
        "style": "placeholders"}
    assert card["stop"] == ["<|im_end|>"]
    assert sum("link text 'causallm_7b.Q4_K_M.gguf'" in w for w in card["warnings"]) == 1
    # The 'Model | MT-Bench' table of the original card is not a file table.
    assert len(card["files"]) == 3


def test_bartowski_style():
    card = parse_card(read_card_file(DATA / "bartowski--Meta-Llama-3.1-70B-Instruct-GGUF.README.md"))
    assert card["repo"] == "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF"
    assert card["model_name"] == "Meta-Llama-3.1-70B-Instruct"
    assert card["quantizer"] == "bartowski" and card["license"] == "llama3.1"
    by_quant = {f["quant"]: f for f in card["files"]}
    assert list(by_quant) == ["Q8_0", "Q6_K", "Q4_K_M", "IQ4_XS", "IQ2_M"]
    q4 = by_quant["Q4_K_M"]
    assert (q4["name"], q4["bits"], q4["size_bytes"], q4["parts"], q4["folder"]) == (
        "Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf", 4, 42_520_000_000, [], None)
    assert q4["use_case"] == "Good quality, default size for must use cases, recommended."
    assert by_quant["IQ2_M"]["bits"] == 2 and by_quant["IQ4_XS"]["size_bytes"] == 37_900_000_000
    q8 = by_quant["Q8_0"]  # split: the link points at the folder holding the parts
    assert q8["folder"] == "Meta-Llama-3.1-70B-Instruct-Q8_0" and q8["size_bytes"] == 74_980_000_000
    assert any("Q8_0/" in w and "does not list" in w for w in card["warnings"])
    tpl = card["prompt_template"]
    assert tpl["style"] == "placeholders"
    assert tpl["text"] == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                           "{system_prompt}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                           "{prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n")
    assert card["stop"] == ["<|eot_id|>"]


def test_mradermacher_style_multi_part():
    card = parse_card(read_card_file(DATA / "mradermacher--goliath-120b-GGUF.README.md"))
    assert card["repo"] == "mradermacher/goliath-120b-GGUF"
    assert card["model_name"] == "goliath-120b" and card["base_model"] == "alpindale/goliath-120b"
    files = {f["name"]: f for f in card["files"]}
    assert list(files) == ["goliath-120b.Q2_K.gguf", "goliath-120b.IQ3_XS.gguf", "goliath-120b.Q4_K_M.gguf",
                           "goliath-120b.Q8_0.gguf"]
    assert files["goliath-120b.Q2_K.gguf"]["size_bytes"] == 43_400_000_000  # unit from the 'Size/GB' header
    assert files["goliath-120b.IQ3_XS.gguf"]["bits"] == 3
    q8 = files["goliath-120b.Q8_0.gguf"]
    assert q8["parts"] == [f"goliath-120b.Q8_0.gguf.part{i}of3" for i in (1, 2, 3)]
    assert q8["size_bytes"] == 125_100_000_000 and q8["use_case"] == "fast, best quality"
    assert files["goliath-120b.Q4_K_M.gguf"]["parts"] == ["goliath-120b.Q4_K_M.gguf.part1of2",
                                                          "goliath-120b.Q4_K_M.gguf.part2of2"]
    assert card["prompt_template"] is None
    assert any("no prompt template" in w for w in card["warnings"])


THEBLOKE_SPLIT = """---
model_name: Big
prompt_template: "### Instruction:\\n{prompt}\\n\\n### Response:\\n"
---
# Big - GGUF

| Name | Quant method | Bits | Size | Max RAM required | Use case |
| ---- | ---- | ---- | ---- | ---- | ----- |
| [big.Q4_K_M.gguf](https://huggingface.co/TheBloke/Big-GGUF/blob/main/big.Q4_K_M.gguf) | Q4_K_M | 4 | 70.64 GB| 73.14 GB | medium |
| big.Q6_K.gguf | Q6_K | 6 | 95.33 GiB | 97.83 GiB | very large |
| big-00001-of-00003.gguf | Q8_0 | 8 | 123,456.5 MB | 125000 MB | sharded |

### q6_K
Please download:
* `big.Q6_K.gguf-split-a`
* `big.Q6_K.gguf-split-b`
"""


def test_thebloke_split_files_units_and_shards():
    card = parse_card(THEBLOKE_SPLIT)
    files = {f["name"]: f for f in card["files"]}
    assert card["repo"] == "TheBloke/Big-GGUF"
    assert files["big.Q4_K_M.gguf"]["size_bytes"] == 70_640_000_000
    assert files["big.Q4_K_M.gguf"]["max_ram_bytes"] == 73_140_000_000
    q6 = files["big.Q6_K.gguf"]
    assert q6["parts"] == ["big.Q6_K.gguf-split-a", "big.Q6_K.gguf-split-b"]
    assert q6["size_bytes"] == round(95.33 * 2**30) and q6["max_ram_bytes"] == round(97.83 * 2**30)
    q8 = files["big-00001-of-00003.gguf"]
    assert q8["size_bytes"] == 123_456_500_000 and q8["max_ram_bytes"] == 125_000_000_000
    assert q8["parts"] == [f"big-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert card["prompt_template"] == {"text": "### Instruction:\n{prompt}\n\n### Response:\n",
                                       "style": "placeholders"}
    assert card["model_name"] == "Big" and card["warnings"] == []


def test_jinja_template_and_no_front_matter():
    text = "# Tiny\n\n## Prompt template: custom\n\n```\n{% for m in messages %}{{ m.content }}  \n{% endfor %}\n```\n"
    card = parse_card(text)
    assert card["prompt_template"] == {"text": "{% for m in messages %}{{ m.content }}  \n{% endfor %}",
                                       "style": "jinja"}
    assert card["model_name"] == "Tiny"
    assert any("no YAML front matter" in w for w in card["warnings"])


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\n\t\n", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00binary", "binary file"),
    (b"# Caf\xe9 latin-1", "not UTF-8"),
])
def test_unreadable_cards_are_clear_errors(tmp_path, cli, content, message):
    p = tmp_path / "README.md"
    p.write_bytes(content)
    with pytest.raises(CardError, match=message):
        read_card_file(p)
    r = cli("card", str(p), "--json")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and str(p) in r.stderr and message in r.stderr
    assert "Traceback" not in r.stderr


def test_unreadable_path(tmp_path, cli):
    loop = tmp_path / "README.md"
    loop.symlink_to(loop)  # unreadable even for root: ELOOP
    r = cli("card", str(loop))
    assert r.returncode == 1 and "cannot be read" in r.stderr and "Traceback" not in r.stderr
    r = cli("card", str(tmp_path))  # a folder without README.md
    assert r.returncode == 1 and "folder without a README.md" in r.stderr
    r = cli("card", str(tmp_path / "missing.md"))
    assert r.returncode == 4 and "Traceback" not in r.stderr


def test_broken_yaml_front_matter_is_a_warning():
    text = ("---\nmodel_name: [unclosed\nlicense: mit\n---\n# Real Name - GGUF\n\n"
            "| Name | Quant method | Bits | Size |\n|---|---|---|---|\n| a.Q4_0.gguf | Q4_0 | 4 | 1.5 GB |\n")
    card = parse_card(text)
    assert any("front matter is not valid YAML at line" in w for w in card["warnings"])
    assert card["model_name"] == "Real Name" and card["license"] is None
    assert card["files"][0]["size_bytes"] == 1_500_000_000


def test_missing_columns_are_warnings():
    text = ("# M\n\n| Quant method | Bits | Size |\n|---|---|---|\n| Q4_0 | 4 | 1 GB |\n\n"
            "| Filename | Quant type |\n|---|---|\n| [m-Q5_K_M.gguf](https://huggingface.co/o/m-GGUF/blob/main/m-Q5_K_M.gguf) | Q5_K_M |\n\n"
            "| Link | Size/GB |\n|---|---|\n| [GGUF](https://huggingface.co/o/m-GGUF/resolve/main/m.Q8_0.gguf) | 2.5 |\n")
    card = parse_card(text)
    w = "\n".join(card["warnings"])
    assert "no file name column" in w and "table skipped" in w
    assert "has no size column; size_bytes is null" in w
    assert "has no quant method column; quant derived from file names" in w
    assert [(f["name"], f["quant"], f["bits"], f["size_bytes"]) for f in card["files"]] == [
        ("m-Q5_K_M.gguf", "Q5_K_M", 5, None), ("m.Q8_0.gguf", "Q8_0", 8, 2_500_000_000)]


def test_absurd_sizes_and_hostile_names_are_warnings():
    text = ("| Name | Quant method | Bits | Size | Max RAM required |\n|---|---|---|---|---|\n"
            "| a.Q4_0.gguf | Q4_0 | 4 | 99999 TB | 0 GB |\n"
            "| b.Q4_0.gguf | Q4_0 | four | lots | 2 GB |\n"
            "| [c.gguf](https://huggingface.co/o/r/blob/main/../../etc/passwd) | Q4_0 | 4 | 1 GB | 2 GB |\n"
            "| d.Q8_0.gguf | Q8_0 | 8 | 12 | 14 GB |\n"
            "| e.Q2_K.gguf | Q2_K | 2 | 3 GB | 1 GB |\n")
    card = parse_card(text)
    files = {f["name"]: f for f in card["files"]}
    assert list(files) == ["a.Q4_0.gguf", "b.Q4_0.gguf", "d.Q8_0.gguf", "e.Q2_K.gguf"]
    assert files["a.Q4_0.gguf"]["size_bytes"] is None and files["a.Q4_0.gguf"]["max_ram_bytes"] is None
    assert files["b.Q4_0.gguf"]["bits"] == 4 and files["b.Q4_0.gguf"]["size_bytes"] is None
    assert files["d.Q8_0.gguf"]["size_bytes"] is None  # a bare number without a unit
    w = "\n".join(card["warnings"])
    assert "'99999 TB' is absurd" in w and "'0 GB' is absurd" in w
    assert "'lots' is not a number" in w and "'12' has no unit" in w
    assert "refused unsafe file name '../../etc/passwd'" in w
    assert "e.Q2_K.gguf: max RAM (1 GB) is less than the file size (3 GB)" in w


# ---------------------------------------------------------------------------
# CLI: --yaml, -o, manifests as SOURCE, repo ids over HTTP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("card_file, name", [(ZEPHYR, "zephyr-7b-beta"), (CAUSAL, "causallm-7b-dpo-alpha")])
def test_yaml_is_a_valid_manifest(cli, shared_cards, card_file, name):
    r = cli("card", str(shared_cards / card_file), "--yaml")
    assert r.returncode == 0, r.stderr
    m = manifest_from_dict(yaml.safe_load(r.stdout), where="stdout")
    assert m.name == name
    card = card_json(cli, str(shared_cards / card_file))
    assert [f.to_dict() | {"sha256": None} for f in m.files] == [
        {k: f[k] for k in FILE_KEYS} | {"sha256": None} for f in card["files"]]
    assert m.prompt_template.text == card["prompt_template"]["text"]
    assert [s.to_dict() for s in m.sources] == [{"kind": "hub", "repo": card["repo"], "revision": "main"}]


def test_output_file_is_written_atomically(cli, shared_cards, tmp_path):
    out = tmp_path / "z.yaml"
    out.write_text("old")
    r = cli("card", str(shared_cards / ZEPHYR), "--yaml", "-o", str(out), "--name", "my-zephyr")
    assert r.returncode == 0 and r.stdout == ""
    assert manifest_from_dict(yaml.safe_load(out.read_text())).name == "my-zephyr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.yaml"]
    r = cli("card", str(shared_cards / ZEPHYR), "-o", str(tmp_path / "z.json"))
    assert r.returncode == 0 and json.loads((tmp_path / "z.json").read_text())["repo"]
    r = cli("card", str(shared_cards / ZEPHYR), "-o", str(tmp_path / "no-such-dir" / "z.json"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = cli("card", str(shared_cards / ZEPHYR), "--json", "--yaml")
    assert r.returncode == 2


def test_card_on_stdin(cli, shared_cards):
    r = cli("card", "-", "--json", input=(shared_cards / CAUSAL).read_text(encoding="utf-8"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["name"] == "causallm_7b-dpo-alpha.Q4_K_M.gguf"
    r = cli("card", "-", input="")
    assert r.returncode == 1 and "<stdin>: is empty" in r.stderr


def test_manifest_name_as_source(cli):
    card = card_json(cli, "zephyr-7b-beta")
    assert card["manifest"] == "zephyr-7b-beta" and card["repo"] == "TheBloke/zephyr-7B-beta-GGUF"
    r = cli("card", "zephyr-7b-beta")
    assert r.returncode == 0 and "zephyr-7b-beta.Q4_K_M.gguf" in r.stdout and "4.37 GB" in r.stdout
    r = cli("card", "no-such-model")
    assert r.returncode == 4 and "zephyr-7b-beta" in r.stderr  # lists what is known


class _Hub(http.server.BaseHTTPRequestHandler):
    """Just enough of the Hub's resolve endpoint for huggingface_hub.hf_hub_download."""

    cards: dict = {}

    def _answer(self, body: bool):
        prefix, sep, rest = self.path.partition("/resolve/")
        repo = prefix.strip("/")
        revision, _, filename = rest.partition("/")
        data = self.cards.get(repo)
        if not sep or data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if filename != "README.md":
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/markdown")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"%s"' % hashlib.sha1(data).hexdigest())
        self.send_header("X-Repo-Commit", hashlib.sha1(repo.encode()).hexdigest())
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def do_GET(self):  # noqa: N802
        self._answer(True)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(shared_cards):
    _Hub.cards = {"TheBloke/zephyr-7B-beta-GGUF": (shared_cards / ZEPHYR).read_bytes()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_repo_id_fetched_from_hf_endpoint(cli, hub, tmp_path, shared_cards):
    env = {"HF_ENDPOINT": hub, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    r = cli("card", "TheBloke/zephyr-7B-beta-GGUF", "--json", env=env)
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    local = card_json(cli, str(shared_cards / ZEPHYR))
    assert card["files"] == local["files"] and card["prompt_template"] == local["prompt_template"]
    assert card["repo"] == "TheBloke/zephyr-7B-beta-GGUF"
    r = cli("card", "nobody/nothing-GGUF", env=env)
    assert r.returncode == 4 and "repository not found" in r.stderr and "Traceback" not in r.stderr
    # Offline and not cached: a network error (exit 5) at once.  (An unreachable endpoint gives the same
    # error after huggingface_hub's ~23 s of retries.)
    r = cli("card", "nobody/nothing-GGUF", env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 5 and "not in the local store" in r.stderr and "Traceback" not in r.stderr
    # Once fetched, the card is in the HF cache: offline works.
    r = cli("card", "TheBloke/zephyr-7B-beta-GGUF", "--json", env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0 and json.loads(r.stdout)["files"] == local["files"]


def test_hostile_long_lines_do_not_hang(tmp_path, cli):
    """Crafted lines that make naive regexes quadratic: parsed in linear time (a hang fails by timeout)."""
    table = "| Name | Quant method | Size |\n|---|---|---|\n"
    text = ("---\nmodel_name: x\n---\n"
            "## Prompt template: " + " " * 300_000 + "x\n"
            "# " + " " * 300_000 + "x\n"
            "* GGML_TYPE_Q4_K " + "1" * 300_000 + "\n"
            + table + "| " + "[a](" * 100_000 + " | Q4_0 | 1 GB |\n"
            + "| " + "[" * 300_000 + " | Q4_0 | 1 GB |\n"
            + "| x" + "-Q4" * 100_000 + ".gguf | | 1 GB |\n")
    p = tmp_path / "README.md"
    p.write_text(text)
    r = cli("card", str(p), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model_name"] == "x"
