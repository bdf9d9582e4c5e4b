"""``modelctl chat``'s terminal side: the REPL, one-shot answers for scripts, and ``--print-prompt``.

The REPL streams replies and has slash commands:

    /help  /system TEXT  /set OPTION VALUE  /clear  /stats  /save FILE  /load FILE  /bye

Everything but the answer goes to stderr, so ``modelctl chat -p ... > answer.txt`` holds only the answer.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from modelctl.chat import (ChatSession, ModelChoice, build_sampling, build_template, count_prompt_tokens, find_model,
                           load_conversation, plan_settings, save_conversation, timings_text)
from modelctl.core import output
from modelctl.core.errors import ModelctlError, UsageError

HISTORY_FILE = "chat_history"

HELP = """\
Commands:
  /help                 this help
  /system TEXT          set the system prompt (/system alone shows it; /system - removes it)
  /set OPTION VALUE     temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, num_predict
  /set                  show the current settings
  /clear                forget the conversation (the system prompt stays)
  /stats                context use and the last reply's timings
  /save FILE            save the conversation as JSON
  /load FILE            load a conversation saved with /save
  /bye                  exit (Ctrl-D too)
Multi-line input: start and end it with \"\"\".  Ctrl-C stops a reply and returns to the prompt."""


@dataclass
class ChatOptions:
    model: str | None = None
    quant: str | None = None
    prompt: str | None = None
    system: str | None = None
    chat_template: str | None = None
    print_prompt: bool = False
    sampling: dict[str, Any] = field(default_factory=dict)   # SamplingParams field -> value (None: unset)
    n_predict: int | None = None
    ctx: int | None = None
    gpu_layers: int | None = None
    threads: int | None = None
    verbose: bool = False
    json: bool = False


class _ReplyPrinter:
    """Streams a reply's text to a stream as it comes, without the leading whitespace models often emit."""

    def __init__(self, out):
        self.out = out
        self.started = False

    def __call__(self, piece: str) -> None:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started = True
        self.out.write(piece)
        self.out.flush()


class Repl:
    """Reads lines, runs slash commands, streams replies; returns the exit code."""

    PROMPT = ">>> "
    MORE = "... "

    def __init__(self, session: ChatSession, *, verbose: bool = False, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, read_line: Callable[[str], str] | None = None):
        self.session = session
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.read_line = read_line or input

    def say(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def read_message(self) -> str | None:
        """One message: a line, or a \"\"\"-fenced block.  None at end of input."""
        try:
            line = self.read_line(self.PROMPT)
        except EOFError:
            return None
        if not line.lstrip().startswith('"""'):
            return line
        first = line.lstrip()[3:]
        if first.rstrip().endswith('"""') and len(first.rstrip()) >= 3:
            return first.rstrip()[:-3]
        lines = [first] if first else []
        while True:
            try:
                more = self.read_line(self.MORE)
            except EOFError:
                return "\n".join(lines)
            if more.rstrip().endswith('"""'):
                lines.append(more.rstrip()[:-3])
                return "\n".join(lines).rstrip("\n")
            lines.append(more)

    def command(self, line: str) -> bool:
        """Run a slash command; False means exit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        s = self.session
        if name in ("/bye", "/exit", "/quit"):
            return False
        if name in ("/help", "/?"):
            self.say(HELP)
        elif name == "/system":
            if not arg:
                self.say(f"system prompt: {s.conversation.system!r}" if s.conversation.system else "no system prompt")
            else:
                s.conversation.system = None if arg == "-" else arg
                self.say("system prompt removed" if arg == "-" else "system prompt set")
        elif name == "/set":
            if not arg:
                self.say(s.settings_text())
            else:
                opt, _, value = arg.partition(" ")
                if not value.strip():
                    raise UsageError(f"/set {opt} needs a value", hint="e.g. /set temp 0.2")
                self.say(s.set_option(opt, value.strip()))
        elif name == "/clear":
            s.clear()
            self.say("conversation cleared")
        elif name == "/stats":
            self.say(s.stats_text())
        elif name == "/save":
            if not arg:
                raise UsageError("/save needs a file name")
            path = save_conversation(s.conversation, arg, s.sampling.to_dict())
            self.say(f"saved {len(s.conversation.turns)} message(s) to {path}")
        elif name == "/load":
            if not arg:
                raise UsageError("/load needs a file name")
            conv, sampling = load_conversation(arg)
            s.conversation = conv
            s.context_tokens = 0
            s.apply_saved_sampling(sampling)
            self.say(f"loaded {len(conv.turns)} message(s) from {arg}")
        else:
            raise UsageError(f"unknown command {name}", hint="/help lists the commands")
        return True

    def ask(self, text: str) -> None:
        out = self.stdout
        on_text = _ReplyPrinter(out)

        try:
            gen = self.session.reply(text, on_text=on_text)
        except KeyboardInterrupt:
            out.write("\n")
            self.say("[stopped]")
            return
        out.write("\n\n" if on_text.started else "\n")
        out.flush()
        if gen.finish_reason == "cancelled":
            self.say("[stopped]")
        if self.verbose:
            self.say(timings_text(gen))

    def run(self) -> int:
        setup_history()
        from modelctl.banner import opening_line

        self.say(opening_line(self.session.engine, self.session.template))
        self.say("/help for commands, /bye or Ctrl-D to exit.")
        while True:
            try:
                text = self.read_message()
            except KeyboardInterrupt:
                self.stdout.write("\n")
                self.say("(Ctrl-D or /bye to exit)")
                continue
            if text is None:
                self.stdout.write("\n")
                return 0
            if not text.strip():
                continue
            if text.startswith("/") and not text.startswith("//"):
                try:
                    if not self.command(text):
                        return 0
                except ModelctlError as exc:
                    self.say(f"error: {exc.one_line()}")
                except KeyboardInterrupt:
                    self.say("[interrupted]")
                continue
            if text.startswith("//"):
                text = text[1:]
            try:
                self.ask(text)
            except ModelctlError as exc:
                self.say(f"error: {exc.one_line()}")


def setup_history() -> None:
    """readline line editing and a history file (``$MODELCTL_HISTORY`` or ~/.local/state/modelctl/)."""
    try:
        import atexit
        import readline
    except ImportError:
        return
    path = Path(os.environ.get("MODELCTL_HISTORY") or
                Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "modelctl" / HISTORY_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            readline.read_history_file(path)
        readline.set_history_length(1000)
    except OSError:
        return

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    atexit.register(save)


def initial_messages(opts: ChatOptions, user_text: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": opts.system}] if opts.system else []
    if user_text is not None:
        msgs.append({"role": "user", "content": user_text})
    return msgs


def read_piped_prompt(stdin: TextIO) -> str:
    data = stdin.read()
    if not data.strip():
        raise UsageError("no prompt: standard input is empty", hint="pipe some text in, or use -p TEXT")
    return data.rstrip("\n")


def run_chat(opts: ChatOptions, stdin: TextIO | None = None) -> int:
    """The whole command; returns the exit code (errors are raised as ModelctlError)."""
    from modelctl.gguf.reader import read_header

    stdin = stdin or sys.stdin
    interactive = opts.prompt is None and stdin.isatty()
    if opts.prompt is None and not interactive:
        if opts.print_prompt:
            data = stdin.read()
            opts.prompt = data.rstrip("\n") if data.strip() else None
        else:
            opts.prompt = read_piped_prompt(stdin)
    if opts.json and interactive:
        raise UsageError("--json needs a prompt (-p TEXT or piped stdin)")
    if opts.n_predict is not None and opts.n_predict < -1:
        raise UsageError(f"-n {opts.n_predict}: use a positive number, or -1 for no limit")

    choice = find_model(opts.model, opts.quant)
    header = read_header(choice.path)
    template = build_template(choice, opts.chat_template, header)

    if opts.print_prompt:
        return print_prompt(template, initial_messages(opts, opts.prompt if opts.prompt is not None else "Hello!"),
                            as_json=opts.json, header=header)

    plan = plan_settings(header, ctx=opts.ctx, gpu_layers=opts.gpu_layers, threads=opts.threads)
    for note in plan.notes:
        output.notice(note)
    from modelctl.runtime.engine import Engine

    engine = Engine.load(choice.path, n_ctx=plan.n_ctx, n_threads=plan.n_threads)
    try:
        sampling = build_sampling(engine, choice.manifest, opts.sampling)
        session = ChatSession(engine, template, sampling, opts.n_predict)
        session.conversation.system = opts.system or None
        if opts.verbose:
            from modelctl.banner import opening_line

            output.notice(opening_line(engine, template))
            output.notice(f"model: {choice.path}\ntemplate: {template.origin}; stop: "
                          f"{', '.join(session.stops) or '(EOS only)'}\nplan: ctx {plan.n_ctx}, about "
                          f"{plan.ram_bytes / 2**20:.0f} MiB of RAM; GPU layers the estimator would offload here: "
                          f"{plan.planned_gpu_layers} (the bundled runtime runs on the CPU)\n"
                          f"sampling: {session.settings_text()}")
        if opts.prompt is not None:
            return one_shot(session, opts.prompt, as_json=opts.json, verbose=opts.verbose, model=choice)
        return Repl(session, verbose=opts.verbose).run()
    finally:
        engine.close()


def one_shot(session: ChatSession, prompt: str, *, as_json: bool, verbose: bool, model: ModelChoice) -> int:
    stdout = sys.stdout
    on_text = _ReplyPrinter(stdout)

    gen = session.reply(prompt, on_text=None if as_json else on_text)
    answer = gen.text.strip()
    if as_json:
        output.print_json({"answer": answer, "tokens": list(gen.tokens), "prompt_tokens": gen.prompt_tokens,
                           "finish_reason": gen.finish_reason, "model": str(model.path),
                           "template": session.template.origin, "timings": gen.timings.to_dict()})
    else:
        stdout.write("\n")
        stdout.flush()
    if verbose:
        output.notice(timings_text(gen))
    return 130 if gen.finish_reason == "cancelled" else 0


def print_prompt(template, messages: list[dict[str, str]], *, as_json: bool, header=None) -> int:
    """The exact rendered prompt on stdout; the template's origin and source on stderr (or all as JSON)."""
    prompt = template.render(messages, add_generation_prompt=True)
    n_tokens, why = count_prompt_tokens(header, template, prompt) if header is not None else (None, "")
    if as_json:
        output.print_json({"prompt": prompt, "prompt_tokens": n_tokens,
                           "template_origin": template.origin, "template_kind": template.kind,
                           "template_source": template.source, "stop": template.stop_strings(),
                           "messages": messages})
        return 0
    err = sys.stderr
    err.write(f"--- template: {template.origin} ({template.kind}) ---\n{template.source}\n")
    err.write(f"--- stop strings: {', '.join(template.stop_strings()) or '(EOS only)'} ---\n")
    if why:
        err.write(f"--- {why} ---\n")
    err.write(f"--- prompt{'' if n_tokens is None else f' ({n_tokens} tokens)'} ---\n")
    err.flush()
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return 0
