"""``modelctl chat``: a terminal chat (REPL) and one-shot answers for scripts.

The pieces: the model (a path, a manifest name, a pulled repo, or the default manifest), its chat
template (``modelctl.templates``), settings planned by the same estimator as ``recommend``, and the
bundled runtime's ``Engine``.  The REPL streams replies, keeps the conversation within the context
(the oldest turns go first, never the system prompt, with a notice), and has slash commands:

    /help  /system TEXT  /set OPTION VALUE  /clear  /stats  /save FILE  /load FILE  /bye

Everything but the answer goes to stderr, so ``modelctl chat -p ... > answer.txt`` holds only the answer.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from modelctl import output
from modelctl.errors import ModelctlError, NotFoundError, UsageError

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_CTX = 4096            # like llama.cpp's default; lowered to what fits, capped by the model's own
MIN_CTX = 512
REPLY_RESERVE = 256           # tokens kept free for a reply when trimming the conversation
CONVERSATION_FORMAT = "modelctl-chat"
HISTORY_FILE = "chat_history"

# /set OPTION VALUE and the matching command-line flags: name -> (SamplingParams field, type)
SAMPLING_OPTIONS: dict[str, tuple[str, type]] = {
    "temp": ("temperature", float),
    "temperature": ("temperature", float),
    "top_k": ("top_k", int),
    "top_p": ("top_p", float),
    "min_p": ("min_p", float),
    "repeat_penalty": ("repeat_penalty", float),
    "repeat_last_n": ("repeat_last_n", int),
    "seed": ("seed", int),
}
OTHER_OPTIONS = {"num_predict": int, "n": int}   # max reply tokens (-1: until the context is full)

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


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# the model and its plan
# ---------------------------------------------------------------------------


@dataclass
class ModelChoice:
    path: Path
    manifest: Any = None
    ref: str = ""


def find_model(ref: str | None, quant: str | None = None) -> ModelChoice:
    """A local GGUF for ``ref`` (the default manifest when None), with its manifest when it has one."""
    from modelctl.store import resolve_model

    ref = ref or DEFAULT_MODEL
    manifest = None
    if not Path(os.path.expanduser(ref)).is_file() and "/" not in ref and not ref.lower().endswith(".gguf"):
        from modelctl.manifest import load_manifest

        try:
            manifest = load_manifest(ref)
        except NotFoundError:
            manifest = None
    return ModelChoice(resolve_model(ref, quant=quant), manifest, ref)


@dataclass
class Plan:
    n_ctx: int
    n_threads: int | None
    planned_gpu_layers: int          # what the estimator would offload on this machine
    ram_bytes: int                   # the estimator's RAM figure at n_ctx on the CPU
    notes: list[str] = field(default_factory=list)


def plan_settings(header, *, ctx: int | None = None, gpu_layers: int | None = None,
                  threads: int | None = None, machine=None) -> Plan:
    """Context and GPU layers from recommend's estimator for this machine; flags override.

    The context is the model's own (capped at DEFAULT_CTX) halved until the CPU placement fits the
    available RAM.  The bundled runtime has no GPU backend: the planned layers are reported, and a
    request for GPU layers is answered with a notice that the CPU runs the model.
    """
    from modelctl import estimate as est
    from modelctl import hardware

    notes: list[str] = []
    arch = est.arch_from_header(header)
    weights = est.weights_from_tensors(header.tensors, arch.layers)
    machine = machine or hardware.detect()
    model_ctx = arch.context_length if isinstance(arch.context_length, int) and arch.context_length > 0 else None
    if ctx is not None:
        if ctx < 16:
            raise UsageError(f"--ctx {ctx} is too small", hint="use at least 16 tokens (512 or more is useful)")
        n_ctx = ctx
        if model_ctx and ctx > model_ctx:
            notes.append(f"--ctx {ctx} is beyond the model's trained context of {model_ctx}; answers may degrade")
    else:
        n_ctx = min(DEFAULT_CTX, model_ctx or DEFAULT_CTX)
        while n_ctx > MIN_CTX and est.estimate(arch, weights, n_ctx).placement(0, ()).ram_bytes > machine.ram_available_bytes:
            n_ctx //= 2
    cpu = est.estimate(arch, weights, n_ctx).placement(0, ())
    if cpu.ram_bytes > machine.ram_available_bytes:
        notes.append(f"the model needs about {cpu.ram_bytes / 2**30:.1f} GiB at ctx {n_ctx} but "
                     f"{machine.ram_available_bytes / 2**30:.1f} GiB is available; it may swap or fail")
    planned = 0
    if machine.gpus:
        from modelctl.recommend import best_placement

        placement, _fits = best_placement(est.estimate(arch, weights, n_ctx), machine)
        planned = placement.ngl
    if gpu_layers is not None and gpu_layers != 0:
        where = "this machine has a GPU" if machine.gpus else "this machine has no GPU either"
        notes.append(f"--gpu-layers {gpu_layers}: modelctl's bundled runtime has no GPU backend ({where}); "
                     "running all layers on the CPU")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads} must be at least 1")
    return Plan(n_ctx, threads, planned, cpu.ram_bytes, notes)


# ---------------------------------------------------------------------------
# the conversation
# ---------------------------------------------------------------------------


@dataclass
class Conversation:
    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)   # user/assistant messages, in order

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [dict(m) for m in self.turns]

    def drop_oldest_turn(self) -> int:
        """Remove the oldest user message and the replies after it; the number of messages removed."""
        if not self.turns:
            return 0
        n = 1
        while n < len(self.turns) and self.turns[n]["role"] != "user":
            n += 1
        del self.turns[:n]
        return n

    def to_dict(self, sampling: dict | None = None) -> dict:
        return {"format": CONVERSATION_FORMAT, "version": 1, "system": self.system,
                "messages": [dict(m) for m in self.turns], **({"sampling": sampling} if sampling else {})}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Conversation":
        if not isinstance(data, dict) or data.get("format") != CONVERSATION_FORMAT:
            raise UsageError("not a modelctl conversation file", where=where,
                             hint="load a file written by /save")
        system = data.get("system")
        msgs = data.get("messages")
        if system is not None and not isinstance(system, str):
            raise UsageError("'system' must be a string or null", where=where)
        if not isinstance(msgs, list):
            raise UsageError("'messages' must be a list", where=where)
        turns = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise UsageError(f"message {i} must be {{\"role\": \"user\"|\"assistant\", \"content\": str}}",
                                 where=where)
            turns.append({"role": m["role"], "content": m["content"]})
        return cls(system or None, turns)


def save_conversation(conv: Conversation, path: str, sampling: dict | None = None) -> Path:
    from modelctl.atomicfile import write_text_atomic

    return write_text_atomic(path, json.dumps(conv.to_dict(sampling), indent=2, ensure_ascii=False) + "\n")


def load_conversation(path: str) -> tuple[Conversation, dict]:
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise NotFoundError("no such file", where=str(p)) from None
    except OSError as exc:
        raise ModelctlError(f"cannot read the file: {exc.strerror}", where=str(p)) from None
    if len(raw) > 64 << 20:
        raise UsageError("conversation file is larger than 64 MiB", where=str(p))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"not valid JSON: {exc}", where=str(p), hint="load a file written by /save") from None
    sampling = data.get("sampling") if isinstance(data, dict) and isinstance(data.get("sampling"), dict) else {}
    return Conversation.from_dict(data, str(p)), sampling


# ---------------------------------------------------------------------------
# a session: engine + template + settings + conversation
# ---------------------------------------------------------------------------


class ChatSession:
    def __init__(self, engine, template, sampling, n_predict: int | None = None,
                 notify: Callable[[str], None] = output.notice):
        self.engine = engine
        self.template = template
        self.sampling = sampling
        self.n_predict = n_predict
        self.conversation = Conversation()
        self.notify = notify
        self.last = None                   # the last Generation
        self.context_tokens = 0            # tokens of the last prompt + reply
        self.stops = template.stop_strings()

    # -- settings -----------------------------------------------------------

    def set_option(self, name: str, value: str) -> str:
        name = name.lower().replace("-", "_")
        if name in OTHER_OPTIONS:
            self.n_predict = _parse(value, int, name)
            return f"num_predict = {self.n_predict}"
        if name not in SAMPLING_OPTIONS:
            raise UsageError(f"unknown option {name!r}",
                             hint=f"options: {', '.join(sorted(set(SAMPLING_OPTIONS) | {'num_predict'}))}")
        fld, kind = SAMPLING_OPTIONS[name]
        v = None if (fld == "seed" and value.lower() in ("none", "random", "-1")) else _parse(value, kind, name)
        from dataclasses import replace

        self.sampling = replace(self.sampling, **{fld: v})
        return f"{fld} = {v}"

    def apply_saved_sampling(self, saved: dict) -> None:
        """Sampling settings stored by /save (unknown keys and bad values are ignored with a notice)."""
        from dataclasses import fields, replace

        known = {f.name: f.type for f in fields(self.sampling)}
        values = {}
        for key, value in saved.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = key in known and (number or (key == "seed" and value is None))
            if ok:
                values[key] = int(value) if key in ("top_k", "repeat_last_n", "seed") and value is not None else value
            else:
                self.notify(f"ignored saved setting {key}={value!r}")
        self.sampling = replace(self.sampling, **values)

    def settings_text(self) -> str:
        s = self.sampling
        return (f"temperature {s.temperature}, top_k {s.top_k}, top_p {s.top_p}, min_p {s.min_p}, "
                f"repeat_penalty {s.repeat_penalty}, repeat_last_n {s.repeat_last_n}, seed {s.seed}, "
                f"num_predict {self.n_predict if self.n_predict is not None else -1}, ctx {self.engine.n_ctx}")

    # -- prompt -------------------------------------------------------------

    def prompt_text(self, messages=None) -> str:
        return self.template.render(self.conversation.messages() if messages is None else messages,
                                    add_generation_prompt=True)

    def tokenize_prompt(self, text: str) -> list[int]:
        return tokenize_chat_prompt(self.engine.tokenizer, text, self.template.special_tokens.get("bos_token"))

    def fit_prompt(self) -> list[int]:
        """The prompt's tokens, after dropping the oldest turns while it does not fit with a reply."""
        n_ctx = self.engine.n_ctx
        reserve = min(REPLY_RESERVE if self.n_predict is None or self.n_predict < 0 else self.n_predict,
                      n_ctx // 4)
        dropped = 0
        while True:
            ids = self.tokenize_prompt(self.prompt_text())
            if len(ids) + reserve <= n_ctx:
                break
            user_turns = sum(1 for m in self.conversation.turns if m["role"] == "user")
            if user_turns <= 1:
                if len(ids) < n_ctx:
                    break   # the last message alone: answer in what is left
                raise UsageError(f"the message needs {len(ids)} tokens but the context holds {n_ctx}",
                                 hint="shorten it, or start with a larger --ctx")
            dropped += self.conversation.drop_oldest_turn()
        if dropped:
            self.notify(f"[context full: dropped the {dropped} oldest message(s) to fit {n_ctx} tokens"
                        f"{'; the system prompt stays' if self.conversation.system else ''}]")
        return ids

    # -- one reply ----------------------------------------------------------

    def reply(self, user_text: str, on_text: Callable[[str], None] | None = None):
        """Add the user's message, generate the reply (streamed through ``on_text``), keep it."""
        self.conversation.turns.append({"role": "user", "content": user_text})
        try:
            ids = self.fit_prompt()
            limit = self.n_predict if self.n_predict is not None and self.n_predict >= 0 else None
            if limit is None or len(ids) + limit > self.engine.n_ctx:
                limit = self.engine.n_ctx - len(ids)
            gen = self.engine.generate(ids, limit, self.sampling, stop_strings=self.stops, on_text=on_text)
        except BaseException:
            self.conversation.turns.pop()   # an error or Ctrl-C before the reply: as if never asked
            raise
        text = gen.text.strip()
        if gen.finish_reason == "cancelled" and not text:
            self.conversation.turns.pop()   # stopped before a word: as if never asked
            return gen
        self.conversation.turns.append({"role": "assistant", "content": text})
        self.last = gen
        self.context_tokens = len(ids) + len(gen.tokens)
        if gen.context_full:
            self.notify("[the reply filled the context; older turns will be dropped next time]")
        return gen

    def clear(self) -> None:
        self.conversation.turns.clear()
        self.engine.reset()
        self.context_tokens = 0

    def stats_text(self) -> str:
        c = self.conversation
        lines = [f"context: {self.context_tokens} of {self.engine.n_ctx} tokens; "
                 f"{sum(1 for m in c.turns if m['role'] == 'user')} turn(s); "
                 f"system prompt: {'yes' if c.system else 'no'}",
                 f"template: {self.template.origin}; stop: {', '.join(self.stops) or '(EOS only)'}"]
        if self.last is not None:
            lines.append(timings_text(self.last))
        return "\n".join(lines)


def tokenize_chat_prompt(tokenizer, text: str, bos_text: str | None) -> list[int]:
    """Special tokens in the rendered template are parsed; BOS added only if the model wants one and
    the template did not already write it."""
    ids = tokenizer.encode(text, add_special=False, parse_special=True)
    bos = getattr(tokenizer, "bos_id", None)
    if getattr(tokenizer, "add_bos", False) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def timings_text(gen) -> str:
    t = gen.timings
    return (f"prompt: {t.prompt_tokens} tokens ({gen.reused_tokens} reused) at {t.prompt_tokens_per_s:.1f} tokens/s"
            f" | reply: {t.gen_tokens} tokens at {t.gen_tokens_per_s:.1f} tokens/s | {gen.finish_reason}")


def _parse(value: str, kind: type, name: str):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} needs a{'n integer' if kind is int else ' number'}, not {value!r}") from None


# ---------------------------------------------------------------------------
# the REPL
# ---------------------------------------------------------------------------


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
        from modelctl.runtime import kernels   # loaded with the engine already

        setup_history()
        self.say(f"modelctl chat: {self.session.engine.path.name} (ctx {self.session.engine.n_ctx}, "
                 f"kernels {kernels.variant()}). "
                 "/help for commands, /bye or Ctrl-D to exit.")
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


# ---------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------


def build_template(choice: ModelChoice, chat_template: str | None, header):
    from modelctl.templates import resolve_template

    names = [choice.ref, choice.path.name]
    return resolve_template(chat_template, choice.manifest, header.metadata, names)


def build_sampling(engine, manifest, overrides: dict[str, Any]):
    """llama.cpp's defaults < the GGUF's general.sampling.* < the manifest's sampling < flags."""
    from modelctl.runtime.sampler import SamplingParams

    base = SamplingParams.from_metadata(engine.metadata)
    msamp = getattr(manifest, "sampling", None) or {}
    fields = {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n", "seed"}
    base = base.with_overrides(**{k: v for k, v in msamp.items() if k in fields})
    return base.with_overrides(**overrides)


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
    from modelctl.gguf_reader import read_header

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


def count_prompt_tokens(header, template, prompt: str) -> tuple[int | None, str]:
    """The prompt's token count with the model's tokenizer, or None and why not."""
    from modelctl.runtime.tokenizer import Tokenizer

    try:
        tokenizer = Tokenizer.from_header(header)
    except ModelctlError as exc:
        return None, f"no token count: {exc.one_line()}"
    return len(tokenize_chat_prompt(tokenizer, prompt, template.special_tokens.get("bos_token"))), ""


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
