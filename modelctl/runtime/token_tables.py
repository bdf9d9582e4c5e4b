"""What llama.cpp knows about vocabularies, as data: token attributes, the texts that end a turn or
generation, the metadata keys of special tokens, and each tokenizer model's defaults."""

# token attributes (llama.cpp's llama_token_attr bits)
A_UNDEFINED, A_UNKNOWN, A_UNUSED, A_NORMAL, A_CONTROL, A_USER_DEFINED, A_BYTE = 0, 1, 2, 4, 8, 16, 32
A_LSTRIP, A_RSTRIP = 128, 256
# tokenizer.ggml.token_type values -> attributes
TOKEN_TYPE_ATTR = {0: A_UNDEFINED, 1: A_NORMAL, 2: A_UNKNOWN, 3: A_CONTROL, 4: A_USER_DEFINED,
                   5: A_UNUSED, 6: A_BYTE}

SPACE_MARK = "\u2581"   # ▁

# Token texts that llama.cpp takes to mean "end of turn" (the first one found becomes EOT) ...
EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
             "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
EOM_TEXTS = ("<|eom_id|>",)
FIM_TEXTS = {
    "fim_pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                "<|code_prefix|>", "<|prefix|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                "<|code_suffix|>", "<|suffix|>"),
    "fim_mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                "<|code_middle|>", "<|middle|>"),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
# ... and every token with one of these texts ends generation.
EOG_TEXTS = frozenset((
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
))
ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")   # gpt-oss

# metadata key suffix -> special id slot (later keys override earlier: the deprecated FIM names last)
SPECIAL_ID_KEYS = (
    ("bos_token_id", "bos"), ("eos_token_id", "eos"), ("eot_token_id", "eot"), ("eom_token_id", "eom"),
    ("unknown_token_id", "unk"), ("seperator_token_id", "sep"), ("padding_token_id", "pad"),
    ("mask_token_id", "mask"), ("fim_pre_token_id", "fim_pre"), ("fim_suf_token_id", "fim_suf"),
    ("fim_mid_token_id", "fim_mid"), ("fim_pad_token_id", "fim_pad"), ("fim_rep_token_id", "fim_rep"),
    ("fim_sep_token_id", "fim_sep"), ("prefix_token_id", "fim_pre"), ("suffix_token_id", "fim_suf"),
    ("middle_token_id", "fim_mid"),
)


SPECIAL_SLOTS = ("bos", "eos", "eot", "eom", "unk", "sep", "pad", "mask",
                 "fim_pre", "fim_suf", "fim_mid", "fim_pad", "fim_rep", "fim_sep")
FLAG_DEFAULTS = {"add_space_prefix": False, "clean_spaces": False, "ignore_merges": False, "add_bos": False,
                 "add_eos": False, "add_sep": False, "escape_whitespaces": False}
# tokenizer.ggml.model -> (family, default special ids, flags), as llama.cpp sets them before the metadata
MODEL_DEFAULTS = {
    "llama": ("spm", {"bos": 1, "eos": 2, "unk": 0}, {"add_space_prefix": True, "add_bos": True}),
    "gpt2": ("bpe", {"bos": 11, "eos": 11}, {"clean_spaces": True}),
    "gemma4": ("bpe", {}, {"clean_spaces": True}),
    "bert": ("wpm", {"bos": 101, "unk": 100, "sep": 102, "pad": 0, "mask": 103},
             {"clean_spaces": True, "add_bos": True, "add_sep": True}),
}
