"""Progress of long steps (tqdm): the step, done/total where known, elapsed time and an ETA.

A :class:`Progress` shows one bar per running task on standard error. A task with a total
(packets simulated, parts synthesized, bench points) shows ``done/total``, the elapsed time
and tqdm's ETA; one without (a Verilator build, a Yosys run) shows the elapsed time, which a
background thread keeps ticking while the step blocks. On a terminal the bars redraw in
place; elsewhere (a CI log, a pipe) each task writes whole lines: when it starts, every
:data:`LOG_INTERVAL_S` seconds, and when it ends. ``Progress(enabled=False)`` shows nothing
(library use, tests).
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

from tqdm import tqdm

__all__ = ["Progress", "Task", "LOG_INTERVAL_S"]

LOG_INTERVAL_S = 15.0
_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
_FORMAT_OPEN = "{desc}: {elapsed}"


class Task:
    """One running step; :meth:`show` sets done/total, :meth:`say` changes what it says."""

    def __init__(self, bar):
        self._bar = bar
        self._lock = threading.Lock()

    def show(self, done: int, total: int | None = None):
        """``done`` of ``total``; a count that goes back (the next part of a step, e.g. the
        next stall setting of a simulation) starts the ETA afresh."""
        with self._lock:
            if done < self._bar.n:
                self._bar.reset(total=total)
            if total is not None and total != self._bar.total:
                self._bar.total = total
                self._bar.bar_format = _FORMAT
            self._bar.n = done
            self._bar.refresh()

    def advance(self, n: int = 1):
        with self._lock:
            self._bar.update(n)

    def say(self, text: str):
        with self._lock:
            self._bar.set_postfix_str(text, refresh=True)

    def _tick(self):
        with self._lock:
            self._bar.refresh()


class Progress:
    """Bars for the steps of a long command (see the module docstring)."""

    def __init__(self, *, enabled: bool = True, file=None):
        self.file = file or sys.stderr
        self.enabled = enabled
        self._tty = enabled and hasattr(self.file, "isatty") and self.file.isatty()

    @contextmanager
    def task(self, desc: str, total: int | None = None):
        if self._tty or not self.enabled:
            bar = tqdm(total=total, desc=desc, file=self.file, disable=not self.enabled,
                       bar_format=_FORMAT if total else _FORMAT_OPEN, leave=True,
                       mininterval=0.2, dynamic_ncols=True)
        else:
            bar = _LineBar(desc, total, self.file)
        task = Task(bar)
        stop = threading.Event()
        ticker = threading.Thread(target=self._ticker, args=(task, stop), daemon=True)
        if self.enabled:
            ticker.start()
        try:
            yield task
        finally:
            stop.set()
            if ticker.is_alive():
                ticker.join()
            bar.close()

    def _ticker(self, task: Task, stop: threading.Event):
        while not stop.wait(1.0):
            task._tick()

    def note(self, text: str):
        """A line of its own, printed above the bars."""
        if self.enabled:
            tqdm.write(text, file=self.file)


class _LineBar:
    """The parts of a tqdm bar a :class:`Task` uses, written as whole lines (no terminal)."""

    def __init__(self, desc: str, total: int | None, file):
        self.desc, self.total, self.file = desc, total, file
        self.n, self.bar_format, self.postfix = 0, None, ""
        self.start = self._said = self._part = time.monotonic()
        self._line("started")

    def _line(self, state: str):
        self._said = time.monotonic()
        elapsed = self._said - self.start
        text = f"{self.desc}: {state}, {_hms(elapsed)} elapsed"
        if self.total:
            text += f", {self.n}/{self.total}"
            if 0 < self.n < self.total:
                part = self._said - self._part
                text += f", about {_hms(part * (self.total - self.n) / self.n)} left"
        if self.postfix:
            text += f" ({self.postfix})"
        print(text, file=self.file, flush=True)

    def refresh(self):
        if time.monotonic() - self._said >= LOG_INTERVAL_S:
            self._line("running")

    def update(self, n: int = 1):
        self.n += n

    def reset(self, total=None):
        self.n, self.total, self._part = 0, total, time.monotonic()

    def set_postfix_str(self, text: str, refresh: bool = True):
        self.postfix = text

    def close(self):
        self._line("done")


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60:d}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:02d}:{s:02d}"
