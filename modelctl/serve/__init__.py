"""``modelctl serve``: an OpenAI-compatible HTTP server on the bundled runtime.

    modelctl serve MODEL [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--api-key KEY]

The model is found and its chat template chosen exactly as ``modelctl chat`` does (``modelctl.chat``).
Its weights are mapped once; each of the ``--parallel`` slots has its own KV cache of ``--ctx``
tokens (``modelctl.serve.slots``); the routes and the OpenAI shapes live in ``modelctl.serve.app`` and
``modelctl.serve.schema``.  Starlette and uvicorn (the ``serve`` extra) carry the HTTP.

Ctrl-C or SIGTERM: the server stops accepting, gives running answers ``SHUTDOWN_GRACE_S`` to finish,
cancels the rest, and exits 0 (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from modelctl.core import output
from modelctl.core.errors import ModelctlError, UsageError

SHUTDOWN_GRACE_S = 10
DEFAULT_PORT = 8080


@dataclass
class ServeOptions:
    model: str | None = None
    quant: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    ctx: int | None = None          # per slot
    threads: int | None = None      # shared by the busy slots
    parallel: int = 1
    api_key: str | None = None
    chat_template: str | None = None


def require_extra():
    """Starlette and uvicorn, or a one-line error saying how to get them."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ModelctlError(f"modelctl serve needs the 'serve' extra ({exc.name} is not installed)",
                            hint="pip install 'modelctl[serve]'") from None
    return uvicorn


def model_id(ref: str, path: Path) -> str:
    """The name /v1/models shows: the reference given, or the file name when it was a path."""
    return path.name if Path(os.path.expanduser(ref)).is_file() else ref


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another --port (0: any free port) or --host") from None
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def serve(opts: ServeOptions) -> int:
    uvicorn = require_extra()
    from modelctl.chat import build_sampling, build_template, find_model, plan_settings
    from modelctl.gguf.reader import read_header
    from modelctl.runtime import kernels
    from modelctl.runtime.engine import Engine
    from modelctl.serve.app import ServeState, create_app
    from modelctl.serve.slots import Scheduler

    if opts.parallel < 1:
        raise UsageError(f"--parallel {opts.parallel} must be at least 1")
    if not 0 <= opts.port <= 65535:
        raise UsageError(f"--port {opts.port} must be between 0 and 65535")
    choice = find_model(opts.model, opts.quant)
    header = read_header(choice.path)
    template = build_template(choice, opts.chat_template, header)
    plan = plan_settings(header, ctx=opts.ctx, threads=opts.threads)
    for note in plan.notes:
        output.notice(note)
    sock = listen(opts.host, opts.port)
    engine = Engine.load(choice.path, n_ctx=plan.n_ctx, n_threads=plan.n_threads)
    engines = [engine] + [engine.fork() for _ in range(opts.parallel - 1)]
    n_threads = plan.n_threads or kernels.default_threads()
    scheduler = Scheduler(engines, n_threads)
    name = model_id(choice.ref, choice.path)
    state = ServeState(name, {name, choice.ref, choice.path.name, choice.path.stem, str(choice.path)},
                       engine, template, build_sampling(engine, choice.manifest, {}), scheduler, opts.api_key)
    url = url_of(sock, opts.host)

    def ready() -> None:
        if not opts.api_key and opts.host not in ("127.0.0.1", "localhost", "::1"):
            output.warn(f"listening on {opts.host} without --api-key: whoever reaches this machine can use the model")
        output.notice(f"modelctl serve: {name} on {url} ({opts.parallel} slot(s) of {plan.n_ctx} tokens, "
                      f"{n_threads} threads{', API key required' if opts.api_key else ''}); Ctrl-C to stop")
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S, server_header=False)
    server = _server_class(uvicorn)(config, ready)
    try:
        server.run(sockets=[sock])
    finally:
        if scheduler.close():     # the weights stay mapped while a slot still computes on them
            for e in reversed(engines):
                e.close()
        state.prep.shutdown(wait=False)
        sock.close()
    output.notice("modelctl serve: stopped")
    return 0


def _server_class(uvicorn):
    class Server(uvicorn.Server):
        """uvicorn's server, announcing when it listens, and ending quietly on SIGINT/SIGTERM
        (uvicorn re-raises the signal after its shutdown; a server stopped on purpose exits 0)."""

        def __init__(self, config, on_ready):
            super().__init__(config)
            self.on_ready = on_ready

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started and not self.should_exit:
                self.on_ready()

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig, frame):
            if not self.should_exit:
                output.notice(f"modelctl serve: stopping (running answers get {SHUTDOWN_GRACE_S} s to finish; "
                              "Ctrl-C again to stop now)")
            super().handle_exit(sig, frame)

    return Server
