"""Slots: N engines over one set of weights, each with its own KV cache, fed from one FIFO queue.

A request becomes a ``Job``; ``Scheduler.submit`` queues it, and the first free slot's worker thread
takes the oldest job and generates (the kernels release the GIL, so slots run at the same time).
The cores are shared among the busy slots: each runs with ``threads // busy`` threads.
Text flows back to the event loop through ``Job.events`` (an asyncio queue fed thread-safely):
``("text", str)`` pieces, then ``("done", Generation)`` or ``("error", Exception)``.
``Job.cancel()`` (the client went away, or shutdown) stops a running job at its next token and
makes a queued one be skipped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    prompt_ids: list[int]
    max_tokens: int | None
    sampling: Any                      # SamplingParams
    stops: list[str]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()

    def post(self, kind: str, value: Any) -> None:
        """From a worker thread: hand an event to the loop (dropped if the loop is gone)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:   # the loop is closed: nobody is listening
            pass


class Scheduler:
    def __init__(self, engines: list, n_threads: int):
        self.engines = engines
        self.n_threads = max(1, n_threads)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._busy: dict[int, Job] = {}          # slot -> running job
        self._closed = False
        self._answered = 0                       # jobs generated (finished or cancelled)
        self._generated = 0                      # tokens generated, all jobs together
        self._workers = [threading.Thread(target=self._work, args=(i,), name=f"modelctl-slot-{i}", daemon=True)
                         for i in range(len(engines))]
        for w in self._workers:
            w.start()

    # -- facts --------------------------------------------------------------

    @property
    def n_slots(self) -> int:
        return len(self.engines)

    def stats(self) -> dict:
        with self._lock:
            busy, answered, generated = len(self._busy), self._answered, self._generated
        return {"slots_idle": self.n_slots - busy, "slots_processing": busy, "queued": self._queue.qsize(),
                "requests_answered": answered, "tokens_generated": generated}

    # -- jobs ---------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("the server is shutting down")
        self._queue.put(job)

    def _work(self, slot: int) -> None:
        engine = self.engines[slot]
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                job.post("error", asyncio.CancelledError())
                continue
            self._started(slot, job)
            n = 0
            try:
                gen = engine.generate(job.prompt_ids, job.max_tokens, job.sampling, job.stops,
                                      on_text=lambda piece: job.post("text", piece), cancel=job.cancelled)
                n = len(gen.tokens)
                job.post("done", gen)
            except Exception as exc:   # handed to the request that asked; the slot serves the next
                job.post("error", exc)
            finally:
                self._finished(slot, n)

    def _started(self, slot: int, job: Job) -> None:
        with self._lock:
            self._busy[slot] = job
            self._share_threads()

    def _finished(self, slot: int, n_tokens: int) -> None:
        with self._lock:
            self._busy.pop(slot, None)
            self._answered += 1
            self._generated += n_tokens
            self._share_threads()

    def _share_threads(self) -> None:
        """The cores divided among the busy slots (called with the lock held)."""
        if self._busy:
            share = max(1, self.n_threads // len(self._busy))
            for s in self._busy:
                self.engines[s].model.set_threads(share)

    # -- shutdown -----------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> bool:
        """Cancel queued and running jobs, stop the workers, wait for them; whether they all stopped
        (a prompt being read cannot be cancelled: until it is done its slot's engine is in use)."""
        self._closed = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
                job.post("error", asyncio.CancelledError())
        with self._lock:
            for job in self._busy.values():
                job.cancel()
        for _ in self._workers:
            self._queue.put(None)
        end = None if timeout is None else time.monotonic() + timeout
        for w in self._workers:
            w.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(w.is_alive() for w in self._workers)
