"""Real model cards (tests/data/cards, PROVENANCE.yaml says where each came from) and what `modelctl card`
must extract from each: the expectations below were written from reading the cards, not from the parser.

Per card, only the keys given are checked: metadata fields, the prompt template (exact text, or None), the
sampling hints, the files (how many; for some, name -> fields), and warnings that must be present (each a piece of
some warning's text).  Every real card of the folder has an entry here and in PROVENANCE.yaml; the coverage test
prints "cards fully parsed: N/M".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelctl.cards.card import parse_card, read_card_file

CARDS = Path(__file__).parent / "data" / "cards"
GB = 10**9


def gb(x: str) -> int:
    whole, _, frac = x.partition(".")
    return int(whole) * GB + int(frac.ljust(9, "0")) if frac else int(whole) * GB


def shards(stem: str, n: int) -> list[str]:
    return [f"{stem}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]


LLAMA3_TEMPLATE = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system_prompt}<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|><|start_header_id|>assistant"
                   "<|end_header_id|>")
MRADER = "https://huggingface.co/mradermacher/"

EXPECT: dict[str, dict] = {
    "Qwen--Qwen2.5-1.5B-Instruct-GGUF": {
        "repo": "Qwen/Qwen2.5-1.5B-Instruct-GGUF", "model_name": "Qwen2.5-1.5B-Instruct",
        "base_model": "Qwen/Qwen2.5-1.5B-Instruct", "license": "apache-2.0", "prompt_template": None,
        # no file table: the one file the card names is the one in its download command
        "n_files": 1, "files": {"qwen2.5-1.5b-instruct-q5_k_m.gguf": {"quant": "Q5_K_M", "bits": 5,
                                                                     "size_bytes": None, "parts": []}},
    },
    "Qwen--Qwen2.5-Coder-32B-Instruct-GGUF": {
        "base_model": "Qwen/Qwen2.5-Coder-32B-Instruct", "license": "apache-2.0", "prompt_template": None,
        # named once as a pattern and as its shards in prose; the merged output of llama-gguf-split is no repo file
        "n_files": 1,
        "files": {"qwen2.5-coder-32b-instruct-q5_k_m-00001-of-00003.gguf": {
            "quant": "Q5_K_M", "parts": shards("qwen2.5-coder-32b-instruct-q5_k_m", 3)}},
    },
    "Qwen--Qwen3-1.7B-GGUF": {
        "model_name": "Qwen3-1.7B", "base_model": "Qwen/Qwen3-1.7B", "prompt_template": None, "n_files": 0,
        "sampling": {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0},
    },
    "bartowski--Mistral-Large-Instruct-2407-GGUF": {
        "model_name": "Mistral-Large-Instruct-2407", "base_model": "mistralai/Mistral-Large-Instruct-2407",
        "license": "mrl", "quantizer": "bartowski", "prompt_template": "<s>[INST] {prompt}[/INST] ",
        "n_files": 20,
        "files": {
            "Mistral-Large-Instruct-2407-Q8_0.gguf": {"quant": "Q8_0", "size_bytes": gb("130.28"),
                                                      "folder": "Mistral-Large-Instruct-2407-Q8_0"},
            "Mistral-Large-Instruct-2407-Q3_K_S.gguf": {"folder": "Mistral-Large-Instruct-2407-Q3_K_S"},
            "Mistral-Large-Instruct-2407-IQ3_XXS.gguf": {"quant": "IQ3_XXS", "size_bytes": gb("47.01"),
                                                         "folder": None, "parts": []},
            "Mistral-Large-Instruct-2407-IQ1_M.gguf": {"size_bytes": gb("28.39")},
        },
    },
    "bartowski--aya-23-8B-GGUF": {
        "model_name": "aya-23-8B", "base_model": "CohereForAI/aya-23-8B", "license": "cc-by-nc-4.0",
        "prompt_template": ("<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{system_prompt}<|END_OF_TURN_TOKEN|>"
                            "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{prompt}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|>"
                            "<|CHATBOT_TOKEN|><|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"),
        "stop": ["<|END_OF_TURN_TOKEN|>"], "n_files": 22, "example_file": "aya-23-8B-Q4_K_M.gguf",
        "files": {"aya-23-8B-Q8_0.gguf": {"quant": "Q8_0", "bits": 8, "size_bytes": gb("8.54")},
                  "aya-23-8B-IQ1_S.gguf": {"quant": "IQ1_S", "size_bytes": gb("2.20")}},
    },
    "bartowski--INTELLECT-1-Instruct-GGUF": {
        "model_name": "INTELLECT-1-Instruct", "base_model": "PrimeIntellect/INTELLECT-1-Instruct",
        "license": "apache-2.0", "prompt_template": LLAMA3_TEMPLATE, "stop": ["<|eot_id|>"], "n_files": 29,
        "files": {"INTELLECT-1-Instruct-f32.gguf": {"quant": "F32", "bits": 32, "size_bytes": gb("40.85")},
                  "INTELLECT-1-Instruct-f16.gguf": {"quant": "F16", "bits": 16, "size_bytes": gb("20.40")},
                  "INTELLECT-1-Instruct-Q4_0_8_8.gguf": {"quant": "Q4_0_8_8", "size_bytes": gb("5.89")},
                  "INTELLECT-1-Instruct-IQ2_XS.gguf": {"size_bytes": gb("3.25")}},
    },
    "mradermacher--Mixtral_Erotic_13Bx2_MOE_22B-GGUF": {
        "repo": "mradermacher/Mixtral_Erotic_13Bx2_MOE_22B-GGUF", "base_model": "cloudyu/Mixtral_Erotic_13Bx2_MOE_22B",
        "model_name": "Mixtral_Erotic_13Bx2_MOE_22B", "license": "cc-by-nc-4.0", "quantizer": "mradermacher",
        "prompt_template": None, "n_files": 16,
        "files": {"Mixtral_Erotic_13Bx2_MOE_22B.Q2_K.gguf": {"quant": "Q2_K", "size_bytes": gb("8.2")},
                  "Mixtral_Erotic_13Bx2_MOE_22B.IQ3_S.gguf": {"use_case": "beats Q3_K*"},
                  "Mixtral_Erotic_13Bx2_MOE_22B.Q8_0.gguf": {"size_bytes": gb("23.1"), "use_case": "fast, best quality"}},
    },
    "mradermacher--Llama-3.2-3B-Instruct-uncensored-GGUF": {
        "base_model": "chuanli11/Llama-3.2-3B-Instruct-uncensored", "n_files": 15, "prompt_template": None,
        "files": {"Llama-3.2-3B-Instruct-uncensored.f16.gguf": {"quant": "F16", "bits": 16, "size_bytes": gb("7.3")},
                  "Llama-3.2-3B-Instruct-uncensored.Q4_K_M.gguf": {"size_bytes": gb("2.3")}},
    },
    "mradermacher--Nanbeige4.1-3B-GGUF": {
        "base_model": "Nanbeige/Nanbeige4.1-3B", "license": "apache-2.0", "n_files": 12,
        "files": {"Nanbeige4.1-3B.Q5_K_M.gguf": {"quant": "Q5_K_M", "size_bytes": gb("2.9")},
                  "Nanbeige4.1-3B.f16.gguf": {"size_bytes": gb("8.0")}},
    },
    "TheBloke--Amber-GGUF": {
        "model_name": "Amber", "model_creator": "LLM360", "base_model": "LLM360/Amber", "license": "apache-2.0",
        "model_type": "amber", "quantizer": "TheBloke", "prompt_template": "{prompt}\n", "n_files": 12,
        "sampling": {"temperature": 0.7, "repeat_penalty": 1.1}, "example_file": "amber.Q4_K_M.gguf",
        "files": {"amber.Q2_K.gguf": {"quant": "Q2_K", "bits": 2, "size_bytes": gb("2.83"),
                                      "max_ram_bytes": gb("5.33")},
                  "amber.Q8_0.gguf": {"bits": 8, "size_bytes": gb("7.16"), "max_ram_bytes": gb("9.66")}},
    },
    "unsloth--DeepSeek-R1-Distill-Qwen-1.5B-GGUF": {
        "model_name": "DeepSeek-R1-Distill-Qwen-1.5B", "base_model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "license": "apache-2.0", "prompt_template": None,
        "n_files": 1, "files": {"DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf": {"quant": "Q4_K_M"}},
    },
    "lmstudio-community--DeepSeek-R1-0528-Qwen3-8B-GGUF": {
        "model_name": "DeepSeek-R1-0528-Qwen3-8B", "model_creator": "deepseek-ai",
        "base_model": "deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", "license": "mit", "quantizer": "bartowski",
        "prompt_template": None, "n_files": 0,
    },
    "lmstudio-community--Magistral-Small-2506-GGUF": {
        "model_creator": "mistralai", "base_model": "mistralai/magistral-small", "license": "apache-2.0",
        "prompt_template": None, "n_files": 0,
    },
    "MaziyarPanahi--Yi-Coder-1.5B-Chat-GGUF": {
        "model_name": "Yi-Coder-1.5B-Chat-GGUF", "model_creator": "01-ai", "base_model": "01-ai/Yi-Coder-1.5B-Chat",
        "quantizer": "MaziyarPanahi", "prompt_template": None, "n_files": 0,
    },
    "QuantFactory--Qwen3-0.6B-GGUF": {
        # the front matter follows a blank line; it is still the card's metadata
        "model_name": "Qwen3-0.6B", "base_model": "Qwen/Qwen3-0.6B-Base", "license": "apache-2.0",
        "prompt_template": None, "n_files": 0,
    },
    "Menlo--Jan-nano-gguf": {
        "model_name": "Jan Nano", "base_model": "Menlo/Jan-nano", "license": "apache-2.0", "quantizer": "Menlo",
        "prompt_template": None, "n_files": 0,
        "sampling": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
    },
    "SakanaAI--TinySwallow-1.5B-Instruct-GGUF": {
        "model_name": "TinySwallow-1.5B-Instruct", "base_model": "Qwen/Qwen2.5-1.5B-Instruct",
        "license": "apache-2.0", "prompt_template": None, "n_files": 0,
    },
    "Clevyby--Mythomax-L2-13b-Q4_K_M-GGUF": {
        "model_name": "MythoMax-L2-13b", "base_model": "Gryphe/MythoMax-L2-13b", "license": "other",
        "quantizer": "mradermacher", "prompt_template": None, "n_files": 0,
    },
    "Vikhrmodels--Vikhr-Llama-3.2-1B-instruct-GGUF": {
        "model_name": "Vikhr-Gemma-2B-instruct",   # what its front matter declares
        "base_model": "Vikhrmodels/Vikhr-Llama-3.2-1B", "license": "llama3.2", "prompt_template": None,
        "n_files": 0, "sampling": {"temperature": 0.3},
    },
    "IlyaGusev--saiga2_7b_gguf": {
        "repo": "IlyaGusev/saiga2_7b_gguf", "license": "llama2", "prompt_template": None,
        "n_files": 1, "files": {"model-q4_K.gguf": {"quant": "Q4_K", "bits": 4, "size_bytes": None}},
    },
    "Kwokou--Mini-Spyra-v.2.1-Q8_0-GGUF": {
        "model_name": "Mini-Spyra-v.2.1-Q8_0", "base_model": "Kwokou/Mini-Spyra-v.2.1", "license": "apache-2.0",
        "prompt_template": None,
        "n_files": 1, "files": {"mini-spyra-v.2.1-q8_0.gguf": {"quant": "Q8_0", "bits": 8}},
    },
    # --- added with the corpus's second half -----------------------------------------------------------------
    "microsoft--Phi-3-mini-4k-instruct-gguf": {
        # no heading names the model and no front-matter name: the repo's name without its GGUF suffix
        "model_name": "Phi-3-mini-4k-instruct", "license": "mit",
        # under "## Chat Format:", a block written on one line with literal \n escapes
        "prompt_template": "<|user|>\nQuestion <|end|>\n<|assistant|>", "stop": ["<|end|>"],
        "sampling": {"temperature": 0.6},   # the llamafile example command's --temp 0.6
        "example_file": "Phi-3-mini-4k-instruct-q4.gguf", "n_files": 2,
        "files": {"Phi-3-mini-4k-instruct-q4.gguf": {"quant": "Q4_K_M", "bits": 4, "size_bytes": gb("2.2")},
                  # the Quant method cell says "None": the quant is the file name's
                  "Phi-3-mini-4k-instruct-fp16.gguf": {"quant": "F16", "bits": 16, "size_bytes": gb("7.2")}},
        "warnings": ["literal \\n"],
    },
    "Qwen--Qwen2-7B-Instruct-GGUF": {
        "model_name": "Qwen2-7B-Instruct", "base_model": "Qwen/Qwen2-7B-Instruct", "license": "apache-2.0",
        # the template is given as llama-cli's --in-prefix / --in-suffix around the user's input
        "prompt_template": "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", "stop": ["<|im_end|>"],
        "sampling": None, "example_file": "qwen2-7b-instruct-q5_k_m.gguf",
        # the perplexity table (Size | fp16 | q8_0 ...) is no file table
        "n_files": 1, "files": {"qwen2-7b-instruct-q5_k_m.gguf": {"quant": "Q5_K_M", "bits": 5, "size_bytes": None}},
    },
    "Qwen--Qwen2.5-7B-Instruct-GGUF": {
        "model_name": "Qwen2.5-7B-Instruct", "base_model": "Qwen/Qwen2.5-7B-Instruct", "license": "apache-2.0",
        "prompt_template": None,
        # the shards named in prose and in the merge command; the merged output is no repo file
        "n_files": 1, "files": {"qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf": {
            "quant": "Q5_K_M", "parts": shards("qwen2.5-7b-instruct-q5_k_m", 2)}},
    },
    "Qwen--Qwen3-30B-A3B-GGUF": {
        "model_name": "Qwen3-30B-A3B", "base_model": "Qwen/Qwen3-30B-A3B", "license": "apache-2.0",
        "prompt_template": None, "n_files": 0,   # `-hf Qwen/Qwen3-30B-A3B:Q8_0` names a quant, not a file
        "sampling": {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0},
    },
    "lmstudio-community--gemma-2-2b-it-GGUF": {
        "model_name": "gemma-2-2b-it", "model_creator": "Google", "base_model": "google/gemma-2-2b-it",
        "license": "gemma", "quantizer": "bartowski",
        "prompt_template": "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model",
        "stop": ["<end_of_turn>"], "n_files": 0,
    },
    "MaziyarPanahi--Mistral-7B-Instruct-v0.3-GGUF": {
        "model_name": "Mistral-7B-Instruct-v0.3-GGUF", "model_creator": "mistralai",
        "base_model": "mistralai/Mistral-7B-Instruct-v0.3", "quantizer": "MaziyarPanahi",
        "license": "apache-2.0",   # only as the Hub tag license:apache-2.0
        "prompt_template": None, "n_files": 0,
    },
    "second-state--Llava-v1.5-7B-GGUF": {
        "model_name": "Llava v1.5 7B", "model_creator": "liuhaotian", "base_model": "liuhaotian/llava-v1.5-7b",
        "license": "llama2", "quantizer": "Second State Inc.",
        # "- Prompt string" in a nested list, the fence indented four spaces, literal \n escapes
        "prompt_template": "<system_prompt>\nUSER:<image_embeddings>\n<textual_prompt>\nASSISTANT:", "stop": [],
        "example_file": "llava-v1.5-7b-Q5_K_M.gguf", "n_files": 13,
        "files": {"llava-v1.5-7b-Q2_K.gguf": {"quant": "Q2_K", "bits": 2, "size_bytes": gb("2.53")},
                  "llava-v1.5-7b-Q3_K_L.gguf": {"size_bytes": gb("3.6")},
                  "llava-v1.5-7b-mmproj-model-f16.gguf": {"quant": "F16", "size_bytes": 624 * 10**6}},
        "warnings": ["literal \\n"],
    },
    "bartowski--deepseek-ai_DeepSeek-V3-0324-GGUF": {
        "model_name": "DeepSeek-V3-0324", "base_model": "deepseek-ai/DeepSeek-V3-0324", "license": "mit",
        "quantizer": "bartowski",
        "prompt_template": ("<｜begin▁of▁sentence｜>{system_prompt}<｜User｜>{prompt}<｜Assistant｜><｜end▁of▁sentence｜>"
                            "<｜Assistant｜>"),
        "stop": ["<｜end▁of▁sentence｜>"],
        # every quant is a folder of shards (Split: true) that the card does not list
        "n_files": 25, "example_file": None,
        "files": {"DeepSeek-V3-0324-Q8_0.gguf": {"quant": "Q8_0", "bits": 8, "size_bytes": gb("713.29"),
                                                 "folder": "deepseek-ai_DeepSeek-V3-0324-Q8_0", "parts": []},
                  "DeepSeek-V3-0324-Q4_K_M-V2.gguf": {"quant": "Q4_K_M", "size_bytes": gb("406.99"),
                                                      "folder": "deepseek-ai_DeepSeek-V3-0324-Q4_K_M-V2"},
                  "DeepSeek-V3-0324-IQ1_S.gguf": {"quant": "IQ1_S", "bits": 1, "size_bytes": gb("133.56")}},
        # the download example names a file the table (and the repo's top level) does not have
        "warnings": ["deepseek-ai_DeepSeek-V3-0324-Q4_K_M.gguf, which is not in the file table",
                     "under the repo folder deepseek-ai_DeepSeek-V3-0324-Q8_0/"],
    },
    "LGAI-EXAONE--EXAONE-3.5-2.4B-Instruct-GGUF": {
        "model_name": "EXAONE-3.5-2.4B-Instruct", "base_model": "EXAONE-3.5-2.4B-Instruct", "license": "exaone",
        "quantizer": "LG-AI-EXAONE", "prompt_template": None, "sampling": None,
        # the --include pattern names no file; the llama-cli command names the BF16 one
        "n_files": 1, "files": {"EXAONE-3.5-2.4B-Instruct-BF16.gguf": {"quant": "BF16", "bits": 16}},
    },
    "Salesforce--xLAM-2-3b-fc-r-gguf": {
        "model_name": "xLAM-2-3b-fc-r", "license": "cc-by-nc-4.0",
        "prompt_template": (
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{TASK_INSTRUCTION}\nYou have access to a "
            "set of tools. When using tools, make calls in a single JSON array: \n\n[{\"name\": \"tool_call_name\", "
            "\"arguments\": {\"arg1\": \"value1\", \"arg2\": \"value2\"}}, ... (additional parallel tool calls as needed)]"
            "\n\nIf no tool is suitable, state that explicitly. If the user's input lacks required parameters, ask for "
            "clarification. Do not interpret or respond until tool results are returned. Once they are available, "
            "process them or make additional calls if needed. For tasks that don't require tools, such as casual "
            "conversation or general advice, respond directly in plain text. The available tools are:\n\n"
            "{AVAILABLE_TOOLS}\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{USER_QUERY}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{ASSISTANT_QUERY}<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\n{USER_QUERY}<|eot_id|><|start_header_id|>assistant<|end_header_id|>"),
        "stop": ["<|eot_id|>"],
        # the download example fetches another repo's name (no .gguf); the Model Series table is no file table
        "n_files": 0,
    },
    "mradermacher--Lily-Cybersecurity-7B-v0.2-i1-GGUF": {
        "model_name": "Lily-Cybersecurity-7B-v0.2", "base_model": "segolilylabs/Lily-Cybersecurity-7B-v0.2",
        "license": "apache-2.0", "quantizer": "mradermacher", "prompt_template": None, "n_files": 24,
        "files": {"Lily-Cybersecurity-7B-v0.2.i1-IQ1_S.gguf": {"quant": "i1-IQ1_S", "bits": 1, "size_bytes": gb("1.7"),
                                                               "use_case": "for the desperate"},
                  "Lily-Cybersecurity-7B-v0.2.i1-Q4_K_M.gguf": {"quant": "i1-Q4_K_M", "size_bytes": gb("4.5")},
                  "Lily-Cybersecurity-7B-v0.2.i1-Q6_K.gguf": {"bits": 6, "size_bytes": gb("6.0")}},
    },
    "unsloth--DeepSeek-V3-0324-GGUF": {
        "model_name": "DeepSeek-V3-0324", "base_model": "deepseek-ai/DeepSeek-V3-0324", "license": "mit",
        "prompt_template": None,
        # MoE Bits | Type | Disk Size | Accuracy | Link | Details: link-only rows, one folder per quant
        "n_files": 6,
        "files": {"UD-IQ1_S.gguf": {"quant": "IQ1_S", "bits": 1, "size_bytes": gb("186"), "folder": "UD-IQ1_S",
                                    "parts": []},
                  "UD-Q2_K_XL.gguf": {"quant": "Q2_K_XL", "bits": 2, "size_bytes": gb("248"), "folder": "UD-Q2_K_XL"},
                  "UD-Q4_K_XL.gguf": {"quant": "Q4_K_XL", "size_bytes": gb("405"), "folder": "UD-Q4_K_XL"}},
    },
    "TheBloke--CodeLlama-70B-Instruct-GGUF": {
        "model_name": "Codellama 70B Instruct", "model_creator": "Code Llama",
        "base_model": "codellama/CodeLlama-70b-Instruct-hf", "license": "llama2", "model_type": "llama",
        "quantizer": "TheBloke",
        "prompt_template": "Source: system\n\n  {system_message}<step> Source: user\n\n  {prompt} <step> Source: assistant\n   \n",
        "stop": ["<step>"], "sampling": {"temperature": 0.7, "repeat_penalty": 1.1},
        "example_file": "codellama-70b-instruct.Q4_K_M.gguf", "n_files": 12,
        "files": {"codellama-70b-instruct.Q2_K.gguf": {"quant": "Q2_K", "bits": 2, "size_bytes": gb("25.46"),
                                                       "max_ram_bytes": gb("27.96"), "parts": []},
                  # rows without a link; the parts are named in the "split and require joining" section
                  "codellama-70b-instruct.Q6_K.gguf": {"quant": "Q6_K", "size_bytes": gb("56.59"), "parts": [
                      "codellama-70b-instruct.Q6_K.gguf-split-a", "codellama-70b-instruct.Q6_K.gguf-split-b"]},
                  "codellama-70b-instruct.Q8_0.gguf": {"bits": 8, "size_bytes": gb("73.29"), "parts": [
                      "codellama-70b-instruct.Q8_0.gguf-split-a", "codellama-70b-instruct.Q8_0.gguf-split-b"]}},
    },
    "brittlewis12--Kunoichi-DPO-v2-7B-GGUF": {
        "model_name": "Kunoichi-DPO-v2-7B", "model_creator": "SanjiWatsuki", "base_model": "SanjiWatsuki/Kunoichi-DPO-v2-7B",
        "license": "cc-by-nc-4.0", "model_type": "mistral", "quantizer": "brittlewis12",
        # the front matter's template (YAML folding read), not the Alpaca block under "Prompt template: Unknown"
        "prompt_template": "{{system_message}}\n\n\n### Instruction:\n{{prompt}}\n\n\n### Response:\n", "stop": [],
        "n_files": 0,   # the three evaluation tables are no file tables
        "warnings": ["front matter prompt_template and the card's prompt template block differ"],
    },
    "DevQuasar--trendmicro-ailab.Llama-Primus-Reasoning-GGUF": {
        "model_name": "Llama-Primus-Reasoning", "base_model": "trendmicro-ailab/Llama-Primus-Reasoning",
        "license": None, "prompt_template": None, "n_files": 0,
    },
    "Menlo--Jan-nano-128k-gguf": {
        # the heading "Jan-Nano-128k: Empowering deeper research ..." names the model before its colon
        "model_name": "Jan-Nano-128k", "base_model": "Menlo/Jan-nano-128k", "license": "apache-2.0",
        "prompt_template": None, "n_files": 0,
        # a ```yaml block of settings under "Recommended Sampling Parameters"
        "sampling": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
    },
    "QuantFactory--Mistral-7B-v0.3-GGUF": {
        "model_name": "Mistral-7B-v0.3", "base_model": "mistralai/Mistral-7B-v0.3", "license": "apache-2.0",
        "prompt_template": None, "sampling": None, "n_files": 0,
    },
    "featherless-ai-quants--FPHam-Sydney_Overthinker_13b_HF-GGUF": {
        "model_name": "Sydney_Overthinker_13b_HF", "base_model": "FPHam/Sydney_Overthinker_13b_HF",
        "quantizer": "featherless-ai-quants", "prompt_template": None, "n_files": 11,
        # Quantization Type | File | Size, sizes in MB
        "files": {"FPHam-Sydney_Overthinker_13b_HF-IQ4_XS.gguf": {"quant": "IQ4_XS", "bits": 4,
                                                                  "size_bytes": 6_694_330_000},
                  "FPHam-Sydney_Overthinker_13b_HF-Q8_0.gguf": {"quant": "Q8_0", "size_bytes": 13_190_570_000}},
    },
    "IlyaGusev--saiga2_70b_gguf": {
        "repo": "IlyaGusev/saiga2_70b_gguf", "license": "llama2", "prompt_template": None,
        "example_file": "ggml-model-q4_1.gguf",
        "n_files": 1, "files": {"ggml-model-q4_1.gguf": {"quant": "Q4_1", "bits": 4, "size_bytes": None}},
    },
    "Reiterate3680--mini-magnum-12b-v1.1-GGUF": {
        "model_name": "mini-magnum-12b-v1.1", "base_model": "intervitens/mini-magnum-12b-v1.1", "license": "other",
        "quantizer": "Reiterate3680", "prompt_template": None, "n_files": 0,
    },
    "androlike--astramix_l2_7b_gguf": {
        "model_name": "astramix_l2_7b", "license": "other", "prompt_template": None, "n_files": 0,
    },
    "TheBloke--Mistral-7B-Instruct-v0.2-GGUF": {
        "model_name": "Mistral 7B Instruct v0.2", "model_creator": "Mistral AI_",
        "base_model": "mistralai/Mistral-7B-Instruct-v0.2", "license": "apache-2.0", "model_type": "mistral",
        "quantizer": "TheBloke", "prompt_template": "<s>[INST] {prompt} [/INST]\n", "stop": [],
        "sampling": {"temperature": 0.7, "repeat_penalty": 1.1}, "example_file": "mistral-7b-instruct-v0.2.Q4_K_M.gguf",
        "n_files": 12,
        "files": {"mistral-7b-instruct-v0.2.Q2_K.gguf": {"quant": "Q2_K", "bits": 2, "size_bytes": gb("3.08"),
                                                         "max_ram_bytes": gb("5.58")},
                  "mistral-7b-instruct-v0.2.Q8_0.gguf": {"bits": 8, "size_bytes": gb("7.70"),
                                                         "max_ram_bytes": gb("10.20")}},
    },
    "MaziyarPanahi--Mistral-Nemo-Instruct-2407-GGUF": {
        "model_name": "Mistral-Nemo-Instruct-2407-GGUF", "model_creator": "mistralai",
        "base_model": "mistralai/Mistral-Nemo-Instruct-2407", "quantizer": "MaziyarPanahi",
        "license": None,   # neither a license field nor a license: tag
        "prompt_template": None, "n_files": 0,
    },
}


def corpus() -> list[str]:
    return sorted(p.name.removesuffix(".README.md") for p in CARDS.glob("*.README.md")
                  if p.name.removesuffix(".README.md") in EXPECT)


def check(name: str) -> list[str]:
    """The expectations card ``name`` does not meet (empty: fully parsed)."""
    path = CARDS / f"{name}.README.md"
    card = parse_card(read_card_file(path), source=str(path))
    exp = EXPECT[name]
    misses = []
    for key in ("repo", "model_name", "model_creator", "base_model", "license", "model_type", "quantizer",
                "sampling", "stop", "example_file"):
        if key in exp and card.get(key) != exp[key]:
            misses.append(f"{key}: {card.get(key)!r} != {exp[key]!r}")
    if "prompt_template" in exp:
        got = (card["prompt_template"] or {}).get("text")
        if got != exp["prompt_template"]:
            misses.append(f"prompt_template: {got!r} != {exp['prompt_template']!r}")
    if "n_files" in exp and len(card["files"]) != exp["n_files"]:
        misses.append(f"files: {len(card['files'])} != {exp['n_files']} ({[f['name'] for f in card['files']]})")
    by_name = {f["name"]: f for f in card["files"]}
    for fname, fields in exp.get("files", {}).items():
        f = by_name.get(fname)
        if f is None:
            misses.append(f"no file {fname}")
            continue
        misses += [f"{fname}.{k}: {f.get(k)!r} != {v!r}" for k, v in fields.items() if f.get(k) != v]
    misses += [f"no warning says {w!r}" for w in exp.get("warnings", []) if not any(w in x for x in card["warnings"])]
    return misses


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_card(name):
    assert (CARDS / f"{name}.README.md").is_file(), f"{name}: the corpus lacks this card"
    assert check(name) == []


# The two abridged cards of tests/test_card.py that share the folder; they are not cards as found.
SEED_CARDS = {"bartowski--Meta-Llama-3.1-70B-Instruct-GGUF", "mradermacher--goliath-120b-GGUF"}
MIN_CORPUS = 40   # issue 16: at least 40 real cards


def test_provenance_names_every_card():
    prov = yaml.safe_load((CARDS / "PROVENANCE.yaml").read_text(encoding="utf-8"))
    listed = {c["file"].removesuffix(".README.md") for c in prov["cards"]}
    in_folder = {p.name.removesuffix(".README.md") for p in CARDS.glob("*.README.md")}
    assert listed == set(EXPECT), "PROVENANCE.yaml and EXPECT must name the same cards"
    assert in_folder - SEED_CARDS == listed, "every card of the folder needs a PROVENANCE entry and an EXPECT entry"
    for c in prov["cards"]:
        owner, _, name = c["file"].removesuffix(".README.md").partition("--")
        assert c["hub_url"] == f"https://huggingface.co/{owner}/{name}" and c["retrieved_from"]


def test_corpus_coverage(capsys):
    """The corpus is large enough, and every card is fully parsed; prints the count for the closing note."""
    fully = [n for n in sorted(EXPECT) if (CARDS / f"{n}.README.md").is_file() and not check(n)]
    with capsys.disabled():
        print(f"\ncards fully parsed: {len(fully)}/{len(EXPECT)}")
    assert len(EXPECT) >= MIN_CORPUS
    assert len(fully) == len(EXPECT), sorted(set(EXPECT) - set(fully))


# ---------------------------------------------------------------------------
# shapes from the issue that the corpus above does not happen to contain (small cards written for the test)
# ---------------------------------------------------------------------------


def test_html_heading_and_prompt_string_intro():
    card = parse_card('<h2 align="center">Prompt template</h2>\n\n```\nUSER: {prompt}\nASSISTANT:\n```\n')
    assert card["prompt_template"]["text"] == "USER: {prompt}\nASSISTANT:"
    card = parse_card("Use this.\n\nPrompt string:\n\n```\n<|user|>\n{prompt}<|end|>\n<|assistant|>\n```\n")
    assert card["prompt_template"]["text"] == "<|user|>\n{prompt}<|end|>\n<|assistant|>"


def test_template_as_follows_with_literal_newline_escapes():
    text = ("The template is as follows:\n\n```\n<|im_start|>system\\n{system_message}<|im_end|>\\n<|im_start|>user"
            "\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n\n```\n")
    card = parse_card(text)
    assert card["prompt_template"]["text"] == ("<|im_start|>system\n{system_message}<|im_end|>\n<|im_start|>user\n"
                                               "{prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert any("literal \\n" in w for w in card["warnings"])
    assert card["stop"] == ["<|im_end|>"]


def test_chat_format_heading_and_a_code_block_that_is_no_template():
    card = parse_card("#### Chat format\n\n```yaml\n<|system|>Insert System Message<|end|><|user|>Insert User "
                      "Message<|end|><|assistant|>\n```\n")
    assert card["prompt_template"]["text"].startswith("<|system|>")
    assert parse_card("## Chat format\n\n```\npip install llama-cpp-python\n```\n")["prompt_template"] is None


def test_first_shard_in_a_table_bits_column_and_gib_sizes():
    text = ("| File | Bits | Size (GiB) | Accuracy |\n|---|---|---|---|\n"
            "| [m-Q8_0-00001-of-00003.gguf](https://huggingface.co/o/m-GGUF/blob/main/m-Q8_0-00001-of-00003.gguf)"
            " | 8 | 70.5 | 99.9% |\n| m-Q4_K_M.gguf | 4 | 40 | 98% |\n")
    files = {f["name"]: f for f in parse_card(text)["files"]}
    q8 = files["m-Q8_0-00001-of-00003.gguf"]
    assert q8["parts"] == shards("m-Q8_0", 3) and q8["bits"] == 8 and q8["size_bytes"] == round(70.5 * 2**30)
    assert files["m-Q4_K_M.gguf"]["quant"] == "Q4_K_M" and files["m-Q4_K_M.gguf"]["size_bytes"] == 40 * 2**30


def test_folder_link_naming_its_first_shard():
    text = ("| Filename | Quant type | File Size | Split |\n|---|---|---|---|\n"
            "| [m-Q8_0-00001-of-00002.gguf](https://huggingface.co/o/m-GGUF/tree/main/m-Q8_0) | Q8_0 | 70GB | true |\n")
    (f,) = parse_card(text)["files"]
    assert f["folder"] == "m-Q8_0" and f["parts"] == [f"m-Q8_0/{n}" for n in shards("m-Q8_0", 2)]


def test_example_naming_a_missing_file_warns_and_adds_nothing():
    text = ("| Name | Quant method | Size |\n|---|---|---|\n| a.Q4_K_M.gguf | Q4_K_M | 4 GB |\n\n"
            "```\n./main -m a.Q5_K_M.gguf -p hi\n```\n")
    card = parse_card(text)
    assert [f["name"] for f in card["files"]] == ["a.Q4_K_M.gguf"]
    assert any("a.Q5_K_M.gguf" in w and "not in the file table" in w for w in card["warnings"])
