"""Progress of long work: a rich bar on a terminal, plain timestamped lines otherwise.

Every phase that can take more than ~2 s reports through :func:`progress` (work counted in
steps: draws, models, grid points) or :func:`phase` (one block of unknown length, e.g. the
first compilation of the kernels). On a terminal the user sees a live bar that disappears
when the work is done; when stderr is not a terminal (a log file, CI, a notebook) one
line per ~10 % of the work or per ~10 s is written instead, each starting with a UTC time
stamp, so a log shows when the work started, how far it got and how long it took::

    2026-12-01T22:41:07Z kenomill: simulating bellekeno_only: 0/10000 draws
    2026-12-01T22:41:17Z kenomill: simulating bellekeno_only: 3000/10000 draws (30 %), 10 s, about 23 s left
    2026-12-01T22:41:40Z kenomill: simulating bellekeno_only: done, 10000 draws in 33 s

The environment variable ``KENOMILL_PROGRESS`` overrides the choice: ``rich`` (a bar
even when not a terminal), ``plain`` (lines even on a terminal) or ``off`` (nothing).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

#: plain mode: a line at least every this many seconds while work advances [s]
PLAIN_INTERVAL_S = 10.0
#: plain mode: work that ends within this time prints nothing (a phase "over ~2 s" reports) [s]
START_DELAY_S = 2.0
#: plain mode: a line each time the work crosses another 1/PLAIN_STEPS of the total
PLAIN_STEPS = 10


def _mode(stream: TextIO) -> str:
    env = os.environ.get("KENOMILL_PROGRESS", "").strip().lower()
    if env in ("rich", "plain", "off"):
        return env
    try:
        return "rich" if stream.isatty() else "plain"
    except (AttributeError, ValueError):  # closed or fake streams
        return "plain"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dur(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def log(message: str, stream: TextIO | None = None) -> None:
    """Write one timestamped line ``<UTC time> kenomill: <message>`` on stderr (unless ``off``)."""
    stream = stream or sys.stderr
    if _mode(stream) == "off":
        return
    print(f"{_stamp()} kenomill: {message}", file=stream, flush=True)


class Progress:
    """Counter of finished work; create it with :func:`progress`.

    Thread-safe: :meth:`advance` may be called from worker threads (dask callbacks).
    """

    def __init__(self, total: int | None, description: str, unit: str, stream: TextIO, mode: str):
        self.total = None if total is None else int(total)
        self.description = description
        self.unit = unit
        self.done = 0
        self.stream = stream
        self.mode = mode
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._next_step = 1  # integer arithmetic: 3 * 0.1 != 0.3
        self._bar = None
        self._task = None
        self._started = False
        self._timer = None

    # -- lifecycle -----------------------------------------------------------------
    def _start(self) -> None:
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            console = Console(file=self.stream, force_terminal=True)
            cols = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
            if self.total is not None:
                cols += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
            cols.append(TimeElapsedColumn())
            self._bar = _RichBar(cols, console)
            self._task = self._bar.add_task(self.description, total=self.total)
            self._bar.start()
        elif self.mode == "plain":
            if START_DELAY_S <= 0:
                self._announce()
            else:
                self._timer = threading.Timer(START_DELAY_S, self._announce)
                self._timer.daemon = True
                self._timer.start()

    def _announce(self) -> None:
        with self._lock:
            self._announce_locked()

    def _announce_locked(self) -> None:
        if self._started:
            return
        self._started = True
        what = f": {self.done}/{self.total}{self._u}" if self.total is not None else ": started"
        self._line(f"{self.description}{what}")

    def _finish(self, failed: bool) -> None:
        elapsed = time.monotonic() - self._t0
        if self._bar is not None:
            self._bar.stop()
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if not self._started:
                return  # over within START_DELAY_S: nothing to report
        if self.mode == "plain":
            if failed:
                self._line(f"{self.description}: stopped after {_dur(elapsed)}" + self._count())
            else:
                n = f", {self.done}{self._u}" if self.total is not None else ""
                self._line(f"{self.description}: done{n} in {_dur(elapsed)}")

    # -- reporting -----------------------------------------------------------------
    @property
    def _u(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def _count(self) -> str:
        return f" ({self.done}/{self.total}{self._u})" if self.total is not None else ""

    def _line(self, text: str) -> None:
        print(f"{_stamp()} kenomill: {text}", file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of work as finished."""
        with self._lock:
            self.done += int(n)
            if self._bar is not None:
                self._bar.advance(self._task, n)
                return
            if self.mode != "plain":
                return
            now = time.monotonic()
            if not self._started:
                if now - self._t0 < START_DELAY_S:
                    return
                self._announce_locked()
            share = self.done / self.total if self.total else math.nan
            steps = self.done * PLAIN_STEPS // self.total if self.total else 0
            due_share = self.total is not None and self._next_step <= steps < PLAIN_STEPS
            due_time = now - self._last_line >= PLAIN_INTERVAL_S
            if not (due_share or due_time) or (self.total is not None and self.done >= self.total):
                return
            self._next_step = max(self._next_step, steps + 1)
            elapsed = now - self._t0
            text = f"{self.description}: {self.done}"
            if self.total is not None:
                text += f"/{self.total}{self._u} ({100 * share:.0f} %), {_dur(elapsed)}"
                if 0 < share < 1:
                    text += f", about {_dur(elapsed * (1 - share) / share)} left"
            else:
                text += f"{self._u}, {_dur(elapsed)}"
            self._line(text)

    def message(self, text: str) -> None:
        """One more line about this phase (printed above the bar on a terminal)."""
        if self._bar is not None:
            self._bar.console.print(text)
        elif self.mode == "plain":
            self._line(f"{self.description}: {text}")


class _RichBar:
    """A transient rich bar created lazily, so that importing this module stays cheap."""

    def __init__(self, columns, console):
        from rich.progress import Progress as _P

        self._p = _P(*columns, console=console, transient=True)
        self.console = console

    def add_task(self, description, total):
        return self._p.add_task(description, total=total)

    def advance(self, task, n):
        self._p.advance(task, n)

    def start(self):
        self._p.start()

    def stop(self):
        self._p.stop()


@contextlib.contextmanager
def progress(
    total: int | None, description: str, *, unit: str = "", stream: TextIO | None = None
) -> Iterator[Progress]:
    """Report the progress of ``total`` units of work (``None``: unknown amount).

    Parameters
    ----------
    total : int or None
        Units of work the block will do (draws, models, grid points); ``None`` when unknown.
    description : str
        What is being done, e.g. ``"simulating bellekeno_only"``.
    unit : str, optional
        Name of one unit in plain lines, e.g. ``"draws"``.
    stream : file, optional
        Where to report (default: ``sys.stderr``).

    Yields
    ------
    Progress
        Call ``.advance(n=1)`` as work finishes.

    Examples
    --------
    >>> with progress(3, "fitting models", unit="models", stream=io.StringIO()) as bar:  # doctest: +SKIP
    ...     for m in models:
    ...         fit(m)
    ...         bar.advance()
    """
    stream = stream or sys.stderr
    p = Progress(total, description, unit, stream, _mode(stream))
    p._start()
    failed = True
    try:
        yield p
        failed = False
    finally:
        p._finish(failed)


@contextlib.contextmanager
def phase(description: str, *, stream: TextIO | None = None) -> Iterator[Progress]:
    """Report a block of work of unknown length (a spinner, or a start and a done line)."""
    with progress(None, description, stream=stream) as p:
        yield p
