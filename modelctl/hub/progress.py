"""Transfer progress on the terminal: one bar per file plus a total (bytes, rate, ETA).

Only on a terminal (``output.live_allowed()``); otherwise pulls are silent until the summary.
The reporter is called from the download threads; rich's Progress is thread-safe.
"""

from __future__ import annotations

import threading

from modelctl.core import output


class Reporter:
    """Progress hooks of a download; this one is silent (off a terminal), ``RichReporter`` draws bars."""

    def start_file(self, name: str, done: int, total: int | None) -> None: ...
    def advance(self, name: str, n: int) -> None: ...
    def end_file(self, name: str, status: str) -> None: ...
    def waiting(self, name: str) -> None: ...
    def close(self) -> None: ...

    def note(self, message: str) -> None:
        """A line the user must see whatever the progress display (a restart, an unverifiable resume)."""
        output.notice(message)


class RichReporter(Reporter):
    def __init__(self, total_bytes: int | None):
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self.progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=output.err(), transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()
        self.total = self.progress.add_task("total", total=total_bytes or None)
        self.progress.start()

    def start_file(self, name: str, done: int, total: int | None) -> None:
        with self.lock:
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(_short(name), total=total, completed=done)
            else:
                self.progress.update(self.tasks[name], total=total, completed=done)
        self.progress.advance(self.total, done)

    def advance(self, name: str, n: int) -> None:
        task = self.tasks.get(name)
        if task is not None:
            self.progress.advance(task, n)
        self.progress.advance(self.total, n)

    def end_file(self, name: str, status: str) -> None:
        task = self.tasks.get(name)
        if task is not None:
            self.progress.update(task, description=f"{_short(name)} ({status})")

    def waiting(self, name: str) -> None:
        self.progress.console.print(f"waiting: another pull is downloading {name}")

    def note(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


class NoticeReporter(Reporter):
    """Not a terminal: no bars; a line when a file waits for another process's download."""

    def waiting(self, name: str) -> None:
        output.notice(f"waiting: another pull is downloading {name}")


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def reporter_for(total_bytes: int | None, quiet: bool = False) -> Reporter:
    if not quiet and output.live_allowed():
        return RichReporter(total_bytes)
    return NoticeReporter()
