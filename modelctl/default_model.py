"""The default model: the best entry of a curated list that fits this machine and answers at a usable speed.

``modelctl chat`` / ``run`` (and any command that needs a model when none is named) call ``choose()``: the
entries of ``CURATED`` (manifests, best first) are planned by recommend's estimator for this machine's RAM
(the bundled runtime computes on the CPU), and their speed is estimated as the memory bandwidth divided by
the file's size (a token reads every weight once).  The first entry that fits and reaches
``MIN_TOKENS_PER_S`` is the choice.  ``resolve()`` then finds its file: from the store, else from the
manifest's sources; when the choice cannot be fetched (the Hub unreachable), the largest smaller entry that
is stored or has a source without the Hub is used instead, with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from modelctl.core.errors import ModelctlError, NetworkError
from modelctl.core.units import format_size

# Manifest names, best answers first.  Llama 3.2 1B/3B are curated manifests too, but not chosen by default
# (the bundled runtime does not apply Llama 3's RoPE frequency factors yet).
CURATED = (
    "qwen2.5-7b-instruct",
    "qwen2.5-3b-instruct",
    "qwen2.5-1.5b-instruct",
    "smollm2-1.7b-instruct",
    "qwen2.5-coder-0.5b-instruct",
)
MIN_TOKENS_PER_S = 10.0
PLAN_CTX = 4096


@dataclass
class Option:
    name: str
    entry: dict | None            # the manifest file recommend picks (None: nothing fits)
    ram_bytes: int | None         # recommend's RAM estimate for it at PLAN_CTX
    tokens_per_s: float | None
    problem: str | None           # why it is not the choice (None: it qualifies)


@dataclass
class Choice:
    option: Option
    options: list[Option]
    bandwidth: float
    bandwidth_source: str
    ram_available: int
    note: str | None = None       # set when no entry qualifies
    skipped: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.option.name

    def position(self) -> int:
        return [o.name for o in self.options].index(self.name)

    def reason(self) -> str:
        o, e = self.option, self.option.entry or {}
        head = (f"{o.name} ({e.get('quant') or '?'}, {format_size(e.get('size_bytes'), binary=False, digits=1)})")
        why = (f"the best of the default list that fits this machine (about {format_size(o.ram_bytes, digits=1)} "
               f"of the {format_size(self.ram_available, digits=1)} RAM available) and should generate about "
               f"{o.tokens_per_s:.0f} tokens/s at {self.bandwidth / 1e9:.0f} GB/s memory bandwidth "
               f"({'from ' + self.bandwidth_source if self.bandwidth_source != 'measured' else 'measured'}; "
               f"{MIN_TOKENS_PER_S:.0f} wanted)") if self.note is None else self.note
        bigger = [f"{b.name}: {b.problem}" for b in self.options[: self.position()] if b.problem]
        return f"{head}: {why}" + (f"; passed over: {'; '.join(bigger)}" if bigger else "")


def _ram_machine(machine):
    """The bundled runtime has no GPU backend: plan for RAM alone."""
    return replace(machine, gpus=[], unified_memory=False)


def evaluate(name: str, machine, bandwidth: float, ctx: int = PLAN_CTX) -> Option:
    """One list entry planned for ``machine`` (RAM only) at ``bandwidth`` bytes/s."""
    from modelctl.hub import sources
    from modelctl.fit.estimate import arch_from_dict
    from modelctl.fit.recommend import default_ctx, recommend, spec_from_manifest_dict

    manifest = sources.load(name)
    arch = arch_from_dict(manifest["architecture"])
    rec = recommend(spec_from_manifest_dict(manifest, arch), _ram_machine(machine), min(ctx, default_ctx(arch)))
    if rec.choice is None:
        smallest = min(rec.candidates, key=lambda c: c.placement.ram_bytes, default=None)
        need = f"about {format_size(smallest.placement.ram_bytes, digits=1)}" if smallest else "more"
        return Option(name, None, smallest.placement.ram_bytes if smallest else None, None,
                      f"needs {need} of RAM")
    entry = next(f for f in manifest["files"] if f["name"] == rec.choice.file.name)
    tps = bandwidth / max(int(entry.get("size_bytes") or rec.choice.file.size_bytes or 1), 1)
    problem = None if tps >= MIN_TOKENS_PER_S else f"about {tps:.1f} tokens/s here, too slow"
    return Option(name, entry, rec.choice.placement.ram_bytes, tps, problem)


def choose(machine=None, bandwidth: float | None = None, *, names: tuple[str, ...] = CURATED) -> Choice:
    """The best entry of ``names`` for ``machine`` (detected when None) at ``bandwidth`` (measured when None)."""
    from modelctl.fit import hardware

    source = "given"
    if bandwidth is None:
        from modelctl.bandwidth import memory_bandwidth

        bandwidth, source = memory_bandwidth()
    machine = machine or hardware.detect()
    options = [evaluate(n, machine, bandwidth) for n in names]
    ok = [o for o in options if o.problem is None]
    if ok:
        return Choice(ok[0], options, bandwidth, source, machine.ram_available_bytes)
    fitting = [o for o in options if o.entry is not None]
    pick = fitting[-1] if fitting else options[-1]
    note = ("no entry of the default list reaches {:.0f} tokens/s here; the smallest that fits".format(
        MIN_TOKENS_PER_S) if fitting else "no entry of the default list fits the RAM available; the smallest")
    if pick.entry is None:
        from modelctl.hub import sources

        manifest = sources.load(pick.name)
        pick = replace(pick, entry=sources.choose_file(manifest, None))
    return Choice(pick, options, bandwidth, source, machine.ram_available_bytes, note)


def _has_source_without_hub(name: str) -> bool:
    from modelctl.hub import sources

    return any(s.get("kind") != "hub" for s in sources.load(name).get("sources") or [])


def resolve(choice: Choice, *, notice: Callable[[str], None], warn: Callable[[str], None]) -> tuple[str, Path]:
    """(manifest name, local file) for the choice: stored, else fetched; when it cannot be fetched, the largest
    smaller entry that is stored or reachable without the Hub, with a note."""
    from modelctl.hub import sources
    from modelctl.hub.resolve import resolve_manifest_model

    order = [choice.option] + [o for o in choice.options[choice.position() + 1:] if o.entry is not None]
    for o in order:
        found = sources.in_store(sources.load(o.name), o.entry)
        if found is not None:
            if o is not choice.option:
                notice(f"note: using {o.name}, already downloaded; {choice.name} would suit this machine "
                       f"better: `modelctl chat {choice.name}` fetches it")
            return o.name, found
    try:
        return choice.name, resolve_manifest_model(choice.name, quant=choice.option.entry.get("quant"))
    except NetworkError as exc:
        first = exc
    for o in order[1:]:
        if not _has_source_without_hub(o.name):
            continue
        warn(f"{choice.name} could not be fetched ({first.one_line()}); falling back to {o.name}, the largest "
             f"entry of the default list reachable without the Hub. Run `modelctl pull {choice.name}` once the "
             "Hub is reachable (or set HF_ENDPOINT to a mirror) to get the better one.")
        manifest = sources.load(o.name)
        from modelctl.hub import progress

        got = sources.fetch(manifest, o.entry, reporter=progress.reporter_for(o.entry.get("size_bytes")),
                            skip=("hub",),
                            on_failure=lambda kind, e: warn(f"source {kind} failed: {e.one_line()}"))
        return o.name, got.path
    raise first


def help_text() -> str:
    """What ``modelctl chat --help`` says about the default on this machine (estimates only, no download)."""
    try:
        c = choose()
    except ModelctlError as exc:
        return f"The default model could not be planned here: {exc.one_line()}"
    return (f"Without MODEL: {c.reason()}. Pick another by naming it: a manifest ({', '.join(CURATED)}, "
            "llama-3.2-1b-instruct, ... `modelctl card NAME` shows one), a .gguf path or owner/repo[:QUANT].")


def open_default(*, notice: Callable[[str], None], warn: Callable[[str], None]) -> tuple[str, Path]:
    """(manifest name, local file) of the default model; the first time (nothing stored yet) the choice is
    explained, with how to pick another."""
    c = choose()
    from modelctl.hub import sources

    if sources.in_store(sources.load(c.name), c.option.entry) is None:
        notice(f"default model: {c.reason()}.\nTo pick another, name it: `modelctl chat NAME` "
               "(`modelctl chat --help` lists the default list) or a .gguf path / owner/repo:QUANT.")
    return resolve(c, notice=notice, warn=warn)
