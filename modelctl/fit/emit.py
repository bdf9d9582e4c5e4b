"""Ready-to-run launch lines for the chosen file: llama.cpp's ``llama-cli`` and an Ollama Modelfile."""

from __future__ import annotations

import re
import shlex

from modelctl.core.errors import UsageError
from modelctl.fit.recommend import Candidate, ModelSpec

# llama.cpp's built-in chat templates (llama-chat.cpp names), recognised from a
# card's placeholder prompt template by their markers.
BUILTIN_TEMPLATES = [
    ("chatml", ("<|im_start|>", "<|im_end|>")),
    ("zephyr", ("<|user|>", "<|assistant|>")),
    ("llama3", ("<|start_header_id|>",)),
    ("gemma", ("<start_of_turn>",)),
    ("mistral-v1", ("[INST]",)),
    ("vicuna", ("USER:", "ASSISTANT:")),
]

# placeholder names used in cards -> Ollama Go-template fields
OLLAMA_FIELDS = {"prompt": "{{ .Prompt }}", "system_message": "{{ .System }}", "system": "{{ .System }}"}


def builtin_template(text: str | None) -> str | None:
    if not text:
        return None
    for name, markers in BUILTIN_TEMPLATES:
        if all(m in text for m in markers):
            return name
    return None


def model_ref(spec: ModelSpec, cand: Candidate) -> str:
    """Where the file is: its local path, else its name (to be pulled next to the command)."""
    loc = cand.file.location
    if loc and not loc.startswith(("http://", "https://")):
        return loc
    return cand.file.name


def llama_cpp_line(spec: ModelSpec, cand: Candidate) -> str:
    args = ["llama-cli", "-m", model_ref(spec, cand), "-ngl", str(cand.placement.ngl),
            "-c", str(cand.estimate.n_ctx)]
    if cand.estimate.type_k != "f16":
        args += ["-ctk", cand.estimate.type_k, "-ctv", cand.estimate.type_v, "-fa", "on"]
    pt = (spec.prompt_template or {}).get("text") if spec.prompt_template else None
    name = builtin_template(pt)
    if name:
        args += ["--chat-template", name]
    elif spec.chat_template:
        # the manifest's Jinja template (a file's own template is used by llama-cli anyway)
        args += ["--jinja", "--chat-template", spec.chat_template]
    elif pt:
        # an unrecognised placeholder template: the card's own way, one prompt
        args += ["-p", pt]
    s = spec.sampling or {}
    for key, flag in (("temperature", "--temp"), ("top_k", "--top-k"), ("top_p", "--top-p"),
                      ("min_p", "--min-p"), ("repeat_penalty", "--repeat-penalty")):
        if s.get(key) is not None:
            args += [flag, str(s[key])]
    args.append("-cnv")
    return shlex.join(args)


def _ollama_template(text: str) -> str:
    def sub(m: re.Match) -> str:
        return OLLAMA_FIELDS.get(m.group(1), m.group(0))

    return re.sub(r"\{(\w+)\}", sub, text)


def ollama_modelfile(spec: ModelSpec, cand: Candidate) -> str:
    ref = model_ref(spec, cand)
    if not cand.file.location and spec.repo:
        ref = f"hf.co/{spec.repo}:{cand.file.quant}" if cand.file.quant else ref
    elif not cand.file.location:
        ref = f"./{ref}"
    lines = [f"FROM {ref}"]
    pt = (spec.prompt_template or {}).get("text") if spec.prompt_template else None
    if pt and (spec.prompt_template or {}).get("style", "placeholders") == "placeholders":
        body = _ollama_template(pt)
        if '"""' in body:
            raise UsageError('the prompt template contains """, which a Modelfile cannot quote',
                             hint="use --emit llama.cpp, or write the TEMPLATE by hand")
        lines.append(f'TEMPLATE """{body}"""')
    lines.append(f"PARAMETER num_ctx {cand.estimate.n_ctx}")
    lines.append(f"PARAMETER num_gpu {cand.placement.ngl}")
    for stop in spec.stop or []:
        lines.append(f"PARAMETER stop {_quote(stop)}")
    s = spec.sampling or {}
    for key in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty"):
        if s.get(key) is not None:
            lines.append(f"PARAMETER {key} {s[key]}")
    return "\n".join(lines) + "\n"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
