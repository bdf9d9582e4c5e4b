"""``modelctl tokenize``, ``run``, ``bench``, ``chat`` and ``serve``: a model on the bundled runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from modelctl.cli.common import JsonOpt, app
from modelctl.core import output
from modelctl.core.errors import Interrupted


# tokenize
# ---------------------------------------------------------------------------


@app.command("tokenize")
def tokenize_cmd(
    model: str = typer.Argument(..., help="A .gguf file (vocab-only files too), a manifest name or a pulled owner/repo[:QUANT]."),
    text: Optional[str] = typer.Argument(None, help="The text; '-' or nothing reads stdin (when piped)."),
    add_special: bool = typer.Option(False, "--add-special", help="Add BOS/EOS as the model's metadata asks."),
    parse_special: bool = typer.Option(False, "--parse-special",
                                       help="Turn special-token text (<|im_start|>, <start_of_turn>...) into those tokens."),
    json_out: bool = JsonOpt,
) -> None:
    """Show the token ids and pieces the model's own tokenizer makes of TEXT (exactly as llama.cpp)."""
    from modelctl.core.errors import UsageError
    from modelctl.runtime import detokenize, tokenizer

    if text is None or text == "-":
        if text is None and sys.stdin.isatty():
            raise UsageError("no text to tokenize", hint="give TEXT, or pipe text on stdin")
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"stdin is not UTF-8 (byte {exc.start})", hint="convert the text to UTF-8") from None
    elif any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        raise UsageError("TEXT is not UTF-8", hint="convert the text to UTF-8")
    tok = tokenizer.Tokenizer.from_file(_resolve_model_path(model, allow_download=False))
    report = detokenize.tokenize_report(tok, text, add_special=add_special, parse_special=parse_special)
    if json_out:
        output.print_json(report)
        return
    lines = [f"{i:>7} {detokenize.piece_repr(tok.token_piece(i))}" for i in report["ids"]]
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    output.notice(f"{len(report['ids'])} tokens")


# ---------------------------------------------------------------------------
# run, bench
# ---------------------------------------------------------------------------


def _resolve_model_path(ref: Optional[str], allow_download: bool = True) -> Path:
    """REF's local file; without REF, the default model chosen for this machine (fetched on first use)."""
    if ref is None:
        from modelctl import default_model

        return default_model.open_default(notice=output.notice, warn=output.warn)[1]
    from modelctl.hub.resolve import resolve_model

    return resolve_model(ref, allow_download=allow_download)


class _DefaultModelHelp(typer.core.TyperCommand):
    """A command whose --help ends with the default model this machine gets (planned only when asked)."""

    def format_help(self, ctx, formatter) -> None:
        from modelctl import default_model

        self.epilog = default_model.help_text()
        super().format_help(ctx, formatter)


def _prompt_text(prompt: Optional[str]) -> str:
    if prompt is not None:
        return prompt
    if not sys.stdin.isatty():
        return sys.stdin.read()
    from modelctl.core.errors import UsageError

    raise UsageError("no prompt", hint="give -p TEXT or pipe the prompt on stdin")


@app.command("run", cls=_DefaultModelHelp)
def run_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: chosen for this machine)."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="The raw prompt (no chat template). Default: stdin."),
    n_predict: int = typer.Option(128, "-n", "--n-predict", help="Tokens to generate at most (-1: until the context is full)."),
    temp: Optional[float] = typer.Option(None, "--temp", help="Temperature (0: greedy). Default: the model's, else 0.8."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k (0: off). Default 40."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p (1: off). Default 0.95."),
    min_p: Optional[float] = typer.Option(None, "--min-p", help="Min-p (0: off). Default 0.05."),
    repeat_penalty: Optional[float] = typer.Option(None, "--repeat-penalty", help="Repeat penalty (1: off, the default)."),
    repeat_last_n: Optional[int] = typer.Option(None, "--repeat-last-n", help="Tokens the penalty looks back on. Default 64."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: random)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop when this text appears (repeatable)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", "-c", min=1, help="Context size in tokens (default: min(model's, 4096))."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads (default: all cores)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16 or f32."),
    parse_special: bool = typer.Option(False, "--parse-special",
                                       help="Read special-token text in the prompt (<|im_start|>...) as those tokens."),
    json_out: bool = JsonOpt,
) -> None:
    """Complete a raw prompt with the bundled runtime, streamed to stdout."""
    from modelctl.runtime.engine import Engine

    text = _prompt_text(prompt)
    path = _resolve_model_path(model)
    engine = Engine.load(path, n_ctx=ctx, n_threads=threads, kv_type=kv_type)
    sampling = engine.default_sampling(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                                       repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
    ids = engine.tokenize(text, parse_special=parse_special)

    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = engine.generate(ids, n_predict, sampling, stop_strings=stop, on_text=None if json_out else stream)
    t = result.timings
    if json_out:
        output.print_json({
            "text": result.text, "tokens": result.tokens, "prompt_tokens": result.prompt_tokens,
            "finish_reason": result.finish_reason,
            "timings": {"prompt_tokens_per_s": round(t.prompt_tokens_per_s, 2),
                        "gen_tokens_per_s": round(t.gen_tokens_per_s, 2), "load_s": round(t.load_s, 3)},
        })
    else:
        if sys.stdout.isatty() and not result.text.endswith("\n"):
            sys.stdout.write("\n")  # piped, stdout is exactly the generated text
        sys.stdout.flush()
        if result.finish_reason != "cancelled":   # cancelled: the one "interrupted" line says it
            output.notice(f"{result.prompt_tokens} prompt tokens at {t.prompt_tokens_per_s:.1f} tok/s, "
                          f"{len(result.tokens)} generated at {t.gen_tokens_per_s:.1f} tok/s "
                          f"(load {t.load_s:.2f} s, finish: {result.finish_reason})")
    if result.finish_reason == "cancelled":
        raise Interrupted()


def _fmt_measure(m: Optional[dict]) -> str:
    if not m:
        return "-"
    return f"{m['median']:.2f} ± {m['stdev']:.2f}"


@app.command("bench")
def bench_cmd(
    model: str = typer.Argument(..., help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT]."),
    n_prompt: int = typer.Option(512, "-p", "--n-prompt", min=0, help="Prompt tokens processed in one batch (0: skip)."),
    n_gen: int = typer.Option(128, "-n", "--n-gen", min=0, help="Tokens generated one at a time (0: skip)."),
    threads: Optional[int] = typer.Option(None, "-t", "--threads", min=1, help="CPU threads (default: all cores)."),
    repetitions: int = typer.Option(5, "-r", "--repetitions", min=1, help="Runs per measure (after a warm-up)."),
    kv_type: str = typer.Option("f16", "--kv-type", help="KV cache type: f16 or f32."),
    profile: bool = typer.Option(False, "--profile", help="Also time each operation of the forward pass."),
    no_reference: bool = typer.Option(False, "--no-reference", help="Do not measure llama.cpp."),
    reference_python: Optional[str] = typer.Option(
        None, "--reference-python", envvar="MODELCTL_REFERENCE_PYTHON",
        help="A Python interpreter with llama_cpp to measure llama.cpp with (default: llama_cpp if importable here)."),
    json_out: bool = JsonOpt,
) -> None:
    """Tokens per second for prompt processing and generation (like llama-bench), beside llama.cpp's."""
    from modelctl.runtime import bench

    path = _resolve_model_path(model)
    if not json_out:
        output.notice(f"benchmarking {path} at {threads or os.cpu_count()} threads, {repetitions} runs each ...")
    result = bench.run(path, n_prompt=n_prompt, n_gen=n_gen, threads=threads, repetitions=repetitions,
                       kv_type=kv_type, profile=profile, reference=not no_reference,
                       reference_python=reference_python)
    if json_out:
        output.print_json(result)
        return
    output.notice(f"modelctl's kernels: {result['kernels']}")
    console = output.out()
    console.print(f"{'engine':48} {'pp' + str(n_prompt) + ' tok/s':>18} {'tg' + str(n_gen) + ' tok/s':>18}",
                  markup=False)
    rows = [result] + ([result["reference"]] if result["reference"] else [])
    for r in rows:
        console.print(f"{r['engine']:48} {_fmt_measure(r['pp']):>18} {_fmt_measure(r['tg']):>18}", markup=False)
    if result["ratios"]:
        rt = result["ratios"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        console.print(f"{'ratio modelctl / llama.cpp':48} {fmt(rt['pp_tokens_per_s']):>18} "
                      f"{fmt(rt['tg_tokens_per_s']):>18}", markup=False)
    else:
        output.notice("llama.cpp not available (no llama_cpp here; see --reference-python): no reference figures")
    if profile:
        for phase, table in (result.get("profile") or {}).items():
            console.print(f"\nprofile {phase}: op, seconds, calls, share", markup=False)
            for row in table:
                console.print(f"  {row['op']:18} {row['seconds']:10.4f} {row['calls']:8d} {row['share'] * 100:6.1f}%",
                              markup=False)


# ---------------------------------------------------------------------------
# chat
# ---------------------------------------------------------------------------


@app.command("chat", cls=_DefaultModelHelp)
def chat_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: chosen for this machine)."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="One-shot: answer TEXT and exit (piped stdin works too)."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt."),
    chat_template: Optional[str] = typer.Option(
        None, "--chat-template", help="A built-in format (chatml, llama3, gemma, zephyr, ...) or a Jinja file."),
    print_prompt: bool = typer.Option(False, "--print-prompt", help="Print the rendered prompt and the template, then exit."),
    temp: Optional[float] = typer.Option(None, "--temp", help="Temperature (0: greedy)."),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    min_p: Optional[float] = typer.Option(None, "--min-p"),
    repeat_penalty: Optional[float] = typer.Option(None, "--repeat-penalty"),
    repeat_last_n: Optional[int] = typer.Option(None, "--repeat-last-n"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (same seed, same answer)."),
    n_predict: Optional[int] = typer.Option(None, "-n", "--n-predict", help="Most tokens per reply (-1: no limit)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context length (default: planned for this machine)."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", help="Layers to offload (the bundled runtime runs on the CPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant of a manifest or repo."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print timings after each reply."),
    json_out: bool = JsonOpt,
) -> None:
    """Chat with a model in the terminal, or answer one prompt (-p TEXT or piped stdin) for scripts."""
    from modelctl.cli.chat import ChatOptions, run_chat

    sampling = {"temperature": temp, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed}
    opts = ChatOptions(model=model, quant=quant, prompt=prompt, system=system, chat_template=chat_template,
                       print_prompt=print_prompt, sampling={k: v for k, v in sampling.items() if v is not None},
                       n_predict=n_predict, ctx=ctx, gpu_layers=gpu_layers, threads=threads, verbose=verbose,
                       json=json_out)
    code = run_chat(opts)
    if code:
        raise typer.Exit(code)


@app.command("serve")
def serve_cmd(
    model: Optional[str] = typer.Argument(
        None, help="A .gguf path, a manifest name or a pulled owner/repo[:QUANT] (default: as chat's)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (0: any free port)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context of each slot (default: planned for this machine)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", help="CPU threads, shared by the busy slots."),
    parallel: int = typer.Option(1, "--parallel", help="Requests answered at once; more wait in turn."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="MODELCTL_API_KEY", show_default=False,
                                          help="Require 'Authorization: Bearer KEY' (env MODELCTL_API_KEY)."),
    quant: Optional[str] = typer.Option(None, "--quant", help="Which quant of a manifest or repo."),
    chat_template: Optional[str] = typer.Option(
        None, "--chat-template", help="A built-in format (chatml, llama3, gemma, ...) or a Jinja file."),
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models)."""
    from modelctl.serve import ServeOptions, serve

    raise typer.Exit(serve(ServeOptions(model=model, quant=quant, host=host, port=port, ctx=ctx, threads=threads,
                                        parallel=parallel, api_key=api_key or None, chat_template=chat_template)))
