"""modelctl.gguf.names: each name pattern once, tried on names as real repositories spell them."""

import pytest

from modelctl.gguf.names import (COMMIT_RE, REPO_ID_RE, SHA256_RE, file_group, is_model_file, legacy_group,
                                 quant_of, shard_set)

# (file name as published, quant it names)
REAL_FILES = [
    ("zephyr-7b-beta.Q4_K_M.gguf", "Q4_K_M"),                                      # TheBloke
    ("causallm_7b-dpo-alpha.Q5_K_S.gguf", "Q5_K_S"),                               # TheBloke (link target)
    ("Meta-Llama-3.1-70B-Instruct-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),          # bartowski shards
    ("Meta-Llama-3.1-70B-Instruct-Q4_K_M/Meta-Llama-3.1-70B-Instruct-Q4_K_M-00002-of-00002.gguf", "Q4_K_M"),
    ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),                 # Qwen official, lower case
    ("goliath-120b.Q4_K_M.gguf-split-a", "Q4_K_M"),                                # TheBloke legacy split
    ("goliath-120b.i1-Q4_K_M.gguf.part1of2", "Q4_K_M"),                           # mradermacher parts
    ("Llama-3.2-1B-Instruct-IQ3_XXS.gguf", "IQ3_XXS"),
    ("gpt-oss-20b-mxfp4.gguf", "MXFP4"),
    ("gemma-3-270m-it-BF16.gguf", "BF16"),
    ("phi-2.fp16.gguf", "F16"),
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("ggml-model-TQ1_0.gguf", "TQ1_0"),
]


@pytest.mark.parametrize("name,quant", REAL_FILES)
def test_quant_of_real_file_names(name, quant):
    assert quant_of(name) == quant
    assert is_model_file(name)


@pytest.mark.parametrize("name", ["README.md", "config.json", "imatrix.dat", "model.safetensors", "Q4_K_M.txt"])
def test_not_model_files(name):
    assert not is_model_file(name)
    assert quant_of(name) is None


def test_shard_set_from_any_shard():
    assert shard_set("a/Llama-Q8_0-00002-of-00003.gguf") == [
        "a/Llama-Q8_0-00001-of-00003.gguf", "a/Llama-Q8_0-00002-of-00003.gguf", "a/Llama-Q8_0-00003-of-00003.gguf"]
    assert shard_set("Llama-Q8_0.gguf") is None
    assert shard_set("x-1-of-3.gguf") is None                       # gguf-split always writes five digits
    assert file_group("a/Llama-Q8_0-00003-of-00003.gguf") == "a/Llama-Q8_0-00001-of-00003.gguf"


def test_legacy_parts_name_their_joined_file_and_order():
    assert legacy_group("dir/goliath-120b.Q4_K_M.gguf-split-b") == ("dir/goliath-120b.Q4_K_M.gguf", 1)
    assert legacy_group("goliath-120b.i1-Q4_K_M.gguf.part2of2") == ("goliath-120b.i1-Q4_K_M.gguf", 2)
    assert legacy_group("goliath-120b.Q4_K_M.gguf") is None
    assert file_group("goliath-120b.Q4_K_M.gguf-split-a") == "goliath-120b.Q4_K_M.gguf"


@pytest.mark.parametrize("repo,ok", [
    ("TheBloke/zephyr-7B-beta-GGUF", True), ("bartowski/Meta-Llama-3.1-70B-Instruct-GGUF", True),
    ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", True), ("lmstudio-community/gemma-3-270m-it-GGUF", True),
    ("unsloth/gpt-oss-20b-GGUF", True), ("owner", False), ("owner/repo/file.gguf", False), ("../x", False),
    ("owner/..", False), ("-x/y", False), ("owner/repo name", False),
])
def test_repo_ids(repo, ok):
    assert bool(REPO_ID_RE.match(repo)) is ok


def test_hex_ids():
    assert COMMIT_RE.match("a" * 40) and not COMMIT_RE.match("A" * 40) and not COMMIT_RE.match("a" * 41)
    assert SHA256_RE.match("0" * 64) and not SHA256_RE.match("0" * 63)
