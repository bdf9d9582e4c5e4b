"""Pick the best quant file of a model for this machine, and say why.

A model is described by a ``ModelSpec``: its architecture, and its candidate
files with whatever is known about each (a GGUF header with exact tensor
sizes, or only a size from the card or the file listing).  Sources (manifest,
card, Hub repo, local file, URL) are turned into a spec by ``modelctl.hub.sources``.

The choice: rank candidates by quality (``modelctl.fit.quality``); the best one that
fits entirely on the GPU(s) wins; failing that, the best one that fits RAM +
VRAM, with as many layers on the GPU as fit; failing that, nothing
(``NothingFitsError``, exit code 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelctl.core.errors import NothingFitsError
from modelctl.fit.estimate import RUNTIME_RAM_OVERHEAD, Arch, Estimate, Placement, Weights, estimate, weights_from_size
from modelctl.fit.hardware import Machine
from modelctl.gguf.names import SHARD_RE
from modelctl.fit.quality import ppl_delta, quant_from_filename
from modelctl.core.units import format_size

# Files in model repos that are not the language model's weights.
NOT_WEIGHTS = re.compile(r"(imatrix|mmproj|\.dat$|vocab|tokenizer|lora|adapter|draft|embed(ding)?s?\.gguf$)",
                         re.IGNORECASE)


@dataclass
class FileSpec:
    name: str                          # the file (first part of a split model)
    quant: str | None = None
    size_bytes: int | None = None      # all parts together
    parts: list[str] = field(default_factory=list)
    weights: Weights | None = None     # exact, from the GGUF header(s)
    size_source: str = "card"          # where size_bytes came from: card | file-size
    location: str | None = None        # local path or URL of the (first part of the) file


@dataclass
class ModelSpec:
    name: str
    arch: Arch
    files: list[FileSpec]
    repo: str | None = None
    revision: str | None = None
    prompt_template: dict | None = None
    chat_template: str | None = None
    stop: list[str] = field(default_factory=list)
    sampling: dict = field(default_factory=dict)


@dataclass
class Candidate:
    file: FileSpec
    estimate: Estimate
    placement: Placement
    fits: bool
    quality_rank: int = 0
    ppl_delta: float = 0.0
    quality_basis: str = ""

    @property
    def full_offload(self) -> bool:
        return self.placement.ngl == self.estimate.max_ngl

    def to_dict(self) -> dict:
        """The JSON contract of one candidate."""
        return {
            "file": self.file.name,
            "quant": self.file.quant,
            "size_bytes": self.file.size_bytes,
            "gpu_layers": self.placement.ngl,
            "ram_bytes": self.placement.ram_bytes,
            "vram_bytes": self.placement.vram_bytes,
            "kv_cache_bytes": self.estimate.kv_cache_bytes,
            "fits": self.fits,
            "quality_rank": self.quality_rank,
            "estimate_source": self.estimate.weights.source,
        }


@dataclass
class Recommendation:
    spec: ModelSpec
    machine: Machine
    ctx: int
    kv_type: str
    candidates: list[Candidate]       # best quality first
    choice: Candidate | None
    reason: str

    def to_dict(self) -> dict:
        return {
            "machine": self.machine.to_dict(),
            "ctx": self.ctx,
            "choice": self.choice.to_dict() if self.choice else None,
            "candidates": [c.to_dict() for c in self.candidates],
        }


DEFAULT_CTX_CAP = 4096   # the context planned for when none is asked: the model's, capped


def default_ctx(arch: Arch) -> int:
    """The context to plan for by default: the model's own, capped at DEFAULT_CTX_CAP."""
    n = arch.context_length
    return min(n, DEFAULT_CTX_CAP) if isinstance(n, int) and n > 0 else DEFAULT_CTX_CAP


def is_weights_file(name: str) -> bool:
    """A language model's weights (not an imatrix, projector, adapter, vocab-only file...)."""
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(".gguf") and not NOT_WEIGHTS.search(base)


def is_projector_file(name: str) -> bool:
    """A multimodal projector (``mmproj-*.gguf``), loaded next to the model with ``--mmproj``."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(".gguf") and "mmproj" in base


def pick_projector(files: list[FileSpec]) -> FileSpec | None:
    """The projector to plan for: the full-precision one if there is one (what cards recommend), else the largest."""
    projs = [f for f in files if is_projector_file(f.name) and f.size_bytes]
    if not projs:
        return None
    full = [f for f in projs if re.search(r"(?i)(f16|bf16|f32)", f.name)]
    return max(full or projs, key=lambda f: f.size_bytes or 0)


def group_split_files(names: list[str]) -> dict[str, list[str]]:
    """{first part: [all parts in order]} for ``X-0000i-of-0000N.gguf``; other files map to themselves."""
    groups: dict[str, list[str]] = {}
    split: dict[tuple[str, str], dict[int, str]] = {}
    for n in names:
        m = SHARD_RE.match(n)
        if m:
            split.setdefault((m["stem"], m["count"]), {})[int(m["index"])] = n
        else:
            groups[n] = [n]
    for (stem, n), parts in split.items():
        ordered = [parts[i] for i in sorted(parts)]
        groups[ordered[0]] = ordered
    return groups


def fits(p: Placement, machine: Machine) -> bool:
    if machine.unified_memory:
        # Apple: the GPU's share is part of RAM (the mmap'd weights are shared, not copied)
        return p.vram_bytes <= machine.vram_free_bytes and p.ram_bytes + p.vram_bytes <= machine.ram_available_bytes
    return p.vram_bytes <= machine.vram_free_bytes and p.ram_bytes <= machine.ram_available_bytes


def best_placement(est: Estimate, machine: Machine) -> tuple[Placement, bool]:
    """The placement with the most GPU layers that fits; if none fits, the CPU-only or full-GPU figures."""
    kinds = [g.vendor for g in machine.gpus]
    if kinds:
        for ngl in range(est.max_ngl, -1, -1):
            p = est.placement(ngl, kinds)
            if fits(p, machine):
                return p, True
        return est.placement(est.max_ngl, kinds), False
    p = est.placement(0, ())
    return p, fits(p, machine)


def _file_weights(spec: ModelSpec, f: FileSpec) -> Weights | None:
    if f.weights is not None:
        return f.weights
    if f.size_bytes:
        return weights_from_size(spec.arch, f.size_bytes, "card" if f.size_source == "card" else "file-size")
    return None


def _params(arch: Arch) -> int:
    return arch.block_params() * arch.layers + 2 * arch.vocab * arch.embedding


def recommend(spec: ModelSpec, machine: Machine, ctx: int, kv_type: str = "f16",
              include_mmproj: bool = False) -> Recommendation:
    """Estimate every candidate file and choose.  Raises NothingFitsError when no file fits."""
    cands: list[Candidate] = []
    projector = pick_projector(spec.files) if include_mmproj else None
    for f in spec.files:
        if not is_weights_file(f.name):
            continue
        w = _file_weights(spec, f)
        if w is None:
            continue
        if projector is not None:
            w.projector = projector.size_bytes or 0
        if f.quant is None:
            f.quant = quant_from_filename(f.name)
        if f.size_bytes is None:
            f.size_bytes = w.total
        est = estimate(spec.arch, w, ctx, kv_type)
        p, ok = best_placement(est, machine)
        bpw = w.total * 8 / max(1, _params(spec.arch))
        delta, basis = ppl_delta(f.quant, bpw)
        cands.append(Candidate(f, est, p, ok, 0, delta, basis))
    # quality first; among equals the smaller file
    cands.sort(key=lambda c: (c.ppl_delta, c.file.size_bytes or 0))
    for i, c in enumerate(cands, 1):
        c.quality_rank = i
    if not cands:
        raise NothingFitsError("no GGUF model file to choose from", where=spec.name,
                               hint="the source lists no .gguf weights with a known size")

    choice, reason = choose(cands, machine, ctx)
    rec = Recommendation(spec, machine, ctx, kv_type, cands, choice, reason)
    return rec


def choose(cands: list[Candidate], machine: Machine, ctx: int) -> tuple[Candidate | None, str]:
    if machine.gpus:
        full = [c for c in cands if c.fits and c.full_offload]
        if full:
            c = full[0]
            return c, (f"{c.file.quant or c.file.name} is the best quality (rank {c.quality_rank} of {len(cands)}) "
                       f"that fits entirely on the GPU at ctx {ctx}: {_summary(c, machine)}"
                       + _better_note(c, cands, machine))
    fitting = [c for c in cands if c.fits]
    if fitting:
        c = max(fitting, key=lambda x: (-x.quality_rank, x.placement.ngl))
        where = "in RAM (no GPU)" if not machine.gpus else \
            f"with {c.placement.ngl} of {c.estimate.max_ngl} layers on the GPU (nothing fits entirely)"
        return c, (f"{c.file.quant or c.file.name} is the best quality (rank {c.quality_rank} of {len(cands)}) "
                   f"that fits {where} at ctx {ctx}: {_summary(c, machine)}" + _better_note(c, cands, machine))
    smallest = min(cands, key=lambda x: x.placement.ram_bytes + x.placement.vram_bytes)
    return None, (f"nothing fits at ctx {ctx}: even {smallest.file.quant or smallest.file.name} needs "
                  f"{_summary(smallest, machine)}")


def _summary(c: Candidate, machine: Machine) -> str:
    p, e = c.placement, c.estimate
    parts = [f"RAM {format_size(p.ram_bytes)} of {format_size(machine.ram_available_bytes)} available"]
    if machine.gpus:
        parts.append(f"VRAM {format_size(p.vram_bytes)} of {format_size(machine.vram_free_bytes)} free")
    if e.weights.projector:
        parts.append(f"projector {format_size(e.weights.projector)}")
    parts.append(f"weights {format_size(e.weights.total)}, KV cache {format_size(e.kv_cache_bytes)} "
                 f"({e.type_k}), compute {format_size(e.compute_bytes)}, runtime {format_size(RUNTIME_RAM_OVERHEAD)}"
                 + (" + GPU context" if p.vram_bytes else ""))
    return "; ".join(parts)


def _better_note(c: Candidate, cands: list[Candidate], machine: Machine) -> str:
    better = [x for x in cands if x.quality_rank < c.quality_rank]
    if not better:
        return ""
    b = better[-1]
    if b.fits:
        return (f". {b.file.quant or b.file.name} is better but fits only with {b.placement.ngl} of "
                f"{b.estimate.max_ngl} layers on the GPU")
    need = b.placement.ram_bytes + (b.placement.vram_bytes if machine.gpus else 0)
    return f". The next better, {b.file.quant or b.file.name}, would need {format_size(need)}"


def spec_from_manifest_dict(d: dict[str, Any], arch: Arch) -> ModelSpec:
    """A manifest (``Manifest.to_dict()``) as a spec: its files with the card's sizes."""
    files = []
    for f in d.get("files") or []:
        parts = list(f.get("parts") or []) or [f["name"]]
        files.append(FileSpec(f["name"], f.get("quant"), f.get("size_bytes"), parts, None, "card"))
    pt = d.get("prompt_template")
    return ModelSpec(d.get("name") or d.get("repo") or "?", arch, files, d.get("repo"), d.get("revision"),
                     pt if isinstance(pt, dict) else ({"text": pt, "style": "placeholders"} if pt else None),
                     d.get("chat_template"), list(d.get("stop") or []), dict(d.get("sampling") or {}))


# ---------------------------------------------------------------------------
# past one machine: layers split across llama.cpp RPC hosts
# ---------------------------------------------------------------------------


@dataclass
class RpcHost:
    host: str
    port: int
    mem_bytes: int             # memory the host gives the model (its rpc-server's device)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


# rpc-server binds to a dotted IPv4 address (ggml-rpc's transport: inet_addr), and the head splits
# host:port at the first colon: IPv4 only
RPC_HOST_RE = re.compile(r"^(?P<host>\d{1,3}(?:\.\d{1,3}){3}):(?P<port>\d{1,5})=(?P<mem>.+)$")


def parse_rpc_host(text: str) -> RpcHost:
    """``HOST:PORT=MEM`` as given to ``--rpc-host``: the host's IPv4 address, its rpc-server's port, and
    the memory it gives the model."""
    from modelctl.core.errors import UsageError
    from modelctl.core.units import parse_size

    m = RPC_HOST_RE.match(text.strip())
    if not m or any(int(b) > 255 for b in m["host"].split(".")):
        raise UsageError(f"--rpc-host {text!r}: expected IPV4:PORT=MEM (llama.cpp's rpc-server listens on an "
                         "IPv4 address)", hint="e.g. 192.168.1.20:50052=24GiB")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise UsageError(f"--rpc-host {text!r}: port {port} is not between 1 and 65535")
    try:
        mem = parse_size(m["mem"])
    except ValueError as exc:
        raise UsageError(f"--rpc-host {text!r}: {exc}") from None
    return RpcHost(m["host"], port, mem)


@dataclass
class RpcShare:
    host: RpcHost
    layers: int                # of the model's blocks + output layer, in order (llama.cpp's tensor split)
    bytes: int                 # weights + KV of those layers + one compute buffer


def layer_costs(est: Estimate) -> list[int]:
    """Bytes each offloadable layer takes on a device: every block (weights + its KV), then the output layer."""
    w = est.weights
    return [w.blocks[i] + est.kv_layers[i] for i in range(est.arch.layers)] + [w.output]


def split_layers(est: Estimate, hosts: list[RpcHost]) -> list[RpcShare] | None:
    """Consecutive layers for each host in proportion to its memory, or None if they do not fit.

    Each host also holds a compute buffer (the estimate's).  Layers are given in order (llama.cpp
    fills devices in the order of ``--rpc``); a host takes the next layer while that brings it closer
    to its share of the total.  When rounding would overfill a host, every host is filled up to its
    memory in turn instead.
    """
    costs = layer_costs(est)
    room = [h.mem_bytes - est.compute_bytes for h in hosts]
    if min(room) <= 0 or sum(costs) > sum(room):
        return None
    for counts in (_proportional(costs, room), _greedy(costs, room)):
        if counts is not None:
            shares, start = [], 0
            for h, n in zip(hosts, counts):
                shares.append(RpcShare(h, n, sum(costs[start:start + n]) + est.compute_bytes))
                start += n
            if all(s.bytes <= s.host.mem_bytes for s in shares):
                return shares
    return None


def _proportional(costs: list[int], room: list[int]) -> list[int]:
    total, counts, i = sum(costs), [], 0
    for j, r in enumerate(room):
        if j == len(room) - 1:
            counts.append(len(costs) - i)
            break
        target, load, n = total * r / sum(room), 0, 0
        while i < len(costs) and abs(load + costs[i] - target) <= abs(load - target):
            load, i, n = load + costs[i], i + 1, n + 1
        counts.append(n)
    return counts


def _greedy(costs: list[int], room: list[int]) -> list[int] | None:
    counts, i = [], 0
    for r in room:
        load, n = 0, 0
        while i < len(costs) and load + costs[i] <= r:
            load, i, n = load + costs[i], i + 1, n + 1
        counts.append(n)
    return counts if i == len(costs) else None


def plan_rpc(rec: Recommendation, hosts: list[RpcHost]) -> tuple[Candidate, list[RpcShare]]:
    """The best-quality file whose layers fit across ``hosts`` (NothingFitsError when none does)."""
    for c in rec.candidates:    # best quality first
        shares = split_layers(c.estimate, hosts)
        if shares is not None:
            return c, shares
    total = sum(h.mem_bytes for h in hosts)
    smallest = min(rec.candidates, key=lambda c: sum(layer_costs(c.estimate)))
    need = sum(layer_costs(smallest.estimate)) + len(hosts) * smallest.estimate.compute_bytes
    raise NothingFitsError(f"nothing fits across {len(hosts)} RPC host(s) with {format_size(total)} at ctx "
                           f"{rec.ctx}: even {smallest.file.quant or smallest.file.name} needs about "
                           f"{format_size(need)}", where=rec.spec.name,
                           hint="add hosts, give them more memory, or plan a smaller --ctx")
