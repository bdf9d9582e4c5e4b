"""``modelctl pull``, ``list``, ``show`` and ``rm``: the local store."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from modelctl.cli.common import JsonOpt, app, human_bytes
from modelctl.core import output


# pull, list, show, rm
# ---------------------------------------------------------------------------


@app.command("pull")
def pull_cmd(
    ref: str = typer.Argument(..., help="owner/repo, owner/repo:QUANT, owner/repo/path/file.gguf, a manifest name, or a URL."),
    include: List[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit (default: main)."),
    quant: Optional[str] = typer.Option(None, "--quant", help="The quant to pull (like REF:QUANT)."),
    dest_dir: Optional[Path] = typer.Option(None, "--dir", help="Also place the files in DIR."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show files, sizes, total and free disk; write nothing."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel connections per file, at most (4 to start)."),
    offline: bool = typer.Option(False, "--offline", help="Use only the local store (like HF_HUB_OFFLINE=1)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", metavar="HEX",
                                         help="A plain URL's expected sha256: the download is checked against it."),
    verify: bool = typer.Option(False, "--verify", help="Hash files already in the store again (not only size and mtime)."),
    json_out: bool = JsonOpt,
) -> None:
    """Download a model into the local store (the Hugging Face cache), resumable and verified."""
    from modelctl.hub.resolve import pull_ref

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    result = pull_ref(ref, include=include, exclude=exclude, revision=revision, quant=quant,
                      dest_dir=dest_dir, dry_run=dry_run, workers=workers, quiet=json_out,
                      sha256=sha256, verify=verify)
    if json_out:
        output.print_json(result)
        return
    console = output.out()
    if dry_run:
        for f in result["files"]:
            mark = "cached" if f["cached"] else "get"
            console.print(f"{mark:7} {human_bytes(f['size_bytes']):>10}  {f['name']}", markup=False, soft_wrap=True)
        console.print(f"total {human_bytes(result['total_bytes'])}, to download "
                      f"{human_bytes(result['download_bytes'])}, free disk {human_bytes(result['free_disk_bytes'])}"
                      f" in {result['store']}", markup=False, soft_wrap=True)
        return
    for f in result["files"]:
        console.print(f"{f['status']:10} {human_bytes(f['size_bytes']):>10}  {f['path']}", markup=False, soft_wrap=True)
    for j in result.get("joined", []):
        console.print(f"{'joined':10} {'':>10}  {j['path']}", markup=False, soft_wrap=True)
    for p in result.get("placed", []):
        console.print(f"{'placed':10} {'':>10}  {p}", markup=False, soft_wrap=True)


@app.command("list")
def list_cmd(json_out: bool = JsonOpt) -> None:
    """Models in the local store: repo, quants, sizes, where."""
    from modelctl.hub import store

    report = store.list_report()
    rows = report["models"]
    if json_out:
        output.print_json(report)
        return
    console = output.out()
    if not rows:
        output.notice(f"no models in {report['store']}")
        return
    for r in rows:
        quants = ",".join(r["quants"]) or "-"
        console.print(f"{r['repo']}  {quants}  {human_bytes(r['size_bytes'])}  {r['path']}", markup=False, soft_wrap=True)


@app.command("show")
def show_cmd(
    model: str = typer.Argument(..., help="A .gguf path, a manifest name, owner/repo[:QUANT] or owner/repo/file.gguf."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant, when the model has several."),
    json_out: bool = JsonOpt,
) -> None:
    """A stored model: card summary, files, chat template, architecture (from the GGUF header)."""
    from modelctl import info

    problems: list = []
    d = info.describe(model, quant=quant, errors=problems)
    _render_show(d, json_out)
    if problems:   # e.g. not a valid GGUF: exit 6, as run and tokenize
        raise problems[0]


def _render_show(d: dict, json_out: bool) -> None:
    from modelctl import info

    if json_out:
        output.print_json(d)
        return
    console = output.out()
    p = lambda s: console.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    p(f"model  {d['model']}")
    if d["path"]:
        p(f"path   {d['path']} ({human_bytes(d['size_bytes'])})")
    if d.get("commit"):
        p(f"commit {d['commit']}")
    if d.get("card"):
        p("card")
        for k, v in d["card"].items():
            p(f"  {k}: {v}")
    if d.get("files"):
        p("files")
        for f in d["files"]:
            p(f"  {f['quant'] or '-':8} {human_bytes(f['size_bytes']):>10}  {f['name']}")
    a = d.get("architecture")
    if a:
        p("architecture")
        for k, v in a.items():
            if v is not None:
                p(f"  {k}: {v}")
    elif d.get("architecture_error") and d["path"] is None:
        p(f"architecture: unreadable ({d['architecture_error']})")
    if d.get("template"):
        t = d["template"]
        p("template")
        n = info.TEMPLATE_PREVIEW
        p("  " + (t if len(t) <= n else t[:n] + " …").replace("\n", "\n  "))


@app.command("rm")
def rm_cmd(
    model: str = typer.Argument(..., help="owner/repo (everything) or owner/repo:QUANT (that quant's files)."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask."),
    json_out: bool = JsonOpt,
) -> None:
    """Remove a model (or one quant of it) from the local store."""
    from modelctl.core.errors import UsageError
    from modelctl.hub import pull
    from modelctl.hub.resolve import parse_ref

    ref = parse_ref(model)
    if ref.kind != "repo" or ref.file:
        raise UsageError("rm takes owner/repo or owner/repo:QUANT", where=model)
    repo, quant = ref.repo, ref.quant
    paths, total = pull.remove(repo, quant)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without confirmation", where=model, hint="pass -y")
        output.err().print(f"remove {len(paths)} item(s), {human_bytes(total)}:", markup=False, soft_wrap=True)
        for p in paths:
            output.err().print(f"  {p}", markup=False, soft_wrap=True)
        if not typer.confirm("Delete?", default=False, err=True):
            raise typer.Exit(1)
    pull.delete(repo, paths)
    if json_out:
        output.print_json({"removed": [str(p) for p in paths], "bytes": total})
    else:
        output.notice(f"removed {model} ({human_bytes(total)})")
