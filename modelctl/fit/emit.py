"""Ready-to-run launch lines for the chosen file: llama.cpp's ``llama-cli``, ``llama-server`` (alone or
over RPC hosts) and an Ollama Modelfile."""

from __future__ import annotations

import re
import shlex

from modelctl.core.errors import UsageError
from modelctl.fit.recommend import Candidate, ModelSpec, RpcShare

# the programs' names in llama.cpp's build (tools/server, tools/rpc: their CMakeLists' targets)
LLAMA_SERVER = "llama-server"
RPC_SERVER = "ggml-rpc-server"

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


def _model_args(spec: ModelSpec, cand: Candidate, ngl: int) -> list[str]:
    """What every llama.cpp program takes alike: the file, GPU layers, context, KV cache types."""
    args = ["-m", model_ref(spec, cand), "-ngl", str(ngl), "-c", str(cand.estimate.n_ctx)]
    if cand.estimate.type_k != "f16":
        args += ["-ctk", cand.estimate.type_k, "-ctv", cand.estimate.type_v, "-fa", "on"]
    return args


def _template_args(spec: ModelSpec) -> tuple[list[str], str | None]:
    """The chat template options, and a card's unrecognised placeholder template (for llama-cli's -p)."""
    pt = (spec.prompt_template or {}).get("text") if spec.prompt_template else None
    name = builtin_template(pt)
    if name:
        return ["--chat-template", name], None
    if spec.chat_template:
        # the manifest's Jinja template (a file's own template is used anyway)
        return ["--jinja", "--chat-template", spec.chat_template], None
    return [], pt


def _sampling_args(spec: ModelSpec) -> list[str]:
    s = spec.sampling or {}
    args: list[str] = []
    for key, flag in (("temperature", "--temp"), ("top_k", "--top-k"), ("top_p", "--top-p"),
                      ("min_p", "--min-p"), ("repeat_penalty", "--repeat-penalty")):
        if s.get(key) is not None:
            args += [flag, str(s[key])]
    return args


def llama_cpp_line(spec: ModelSpec, cand: Candidate) -> str:
    template, placeholder = _template_args(spec)
    # an unrecognised placeholder template: the card's own way, one prompt
    prompt = ["-p", placeholder] if placeholder else []
    return shlex.join(["llama-cli", *_model_args(spec, cand, cand.placement.ngl), *template, *prompt,
                       *_sampling_args(spec), "-cnv"])


def _server_args(spec: ModelSpec, cand: Candidate, ngl: int, parallel: int, host: str, port: int) -> list[str]:
    return [LLAMA_SERVER, *_model_args(spec, cand, ngl), "-np", str(parallel), *_template_args(spec)[0],
            *_sampling_args(spec), "--host", host, "--port", str(port)]


def llama_server_line(spec: ModelSpec, cand: Candidate, parallel: int = 1, host: str = "127.0.0.1",
                      port: int = 8080) -> str:
    """llama-server with the chosen file's placement; ``-c`` is the total of ``parallel`` slots."""
    return shlex.join(_server_args(spec, cand, cand.placement.ngl, parallel, host, port))


def llama_rpc_lines(spec: ModelSpec, cand: Candidate, shares: list[RpcShare], parallel: int = 1,
                    host: str = "127.0.0.1", port: int = 8080) -> str:
    """One rpc-server line per host, then the head's llama-server over them all.

    Every layer goes to the RPC hosts (``-ngl`` all), split by ``--tensor-split`` in layer counts in
    the order of ``--rpc`` (llama.cpp gives device i the layers from the running sum of the counts
    before it); the head keeps the token embeddings, as llama.cpp always does."""
    servers = [shlex.join([RPC_SERVER, "-H", s.host.host, "-p", str(s.host.port), "-c"]) for s in shares]
    head = _server_args(spec, cand, cand.estimate.max_ngl, parallel, host, port)
    head += ["--rpc", ",".join(s.host.endpoint for s in shares),
             "--tensor-split", ",".join(str(s.layers) for s in shares)]
    return "\n".join([*servers, shlex.join(head)]) + "\n"


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
