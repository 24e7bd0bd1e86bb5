"""Progress of a long step: a rich bar on a terminal, timestamped lines in a log.

`progress_lines(iterable, total, what)` wraps a loop; `ProgressLines(total, what)` is the
same as a context with `advance(n)`. When the output is not a terminal (a log file, a pipe,
`make demo > log 2>&1`), a line `HH:MM:SS what: done/total (rate/s, ETA mm:ss)` is written
at most every `every_s` seconds, and a final line when the step ends (a step shorter than
`every_s` writes nothing); on a terminal the rich bar is drawn instead (or nothing, with
`bar=False`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

EVERY_S = 30.0  # the longest a log waits for a progress line


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal; stderr counts only while stdout is one
    too (`cmd > log` makes a log: lines, not a bar)."""
    try:
        if not stream.isatty():
            return False
        return stream is not sys.stderr or sys.stdout.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def clock_text(seconds: float) -> str:
    """`mm:ss`, or `h:mm:ss` from an hour on."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressLines:
    """Progress of one step over `total` units (None: unknown), called `what`.

    `advance(n)` after each unit; the context's exit ends the step (the final line, once the
    step has lasted `every_s` or written a line). On a
    non-terminal `stream` (default stderr) a line comes at most every `every_s` seconds of
    `clock`; on a terminal a rich bar (`transient`: gone at the end), or nothing when
    `bar=False` (an outer bar is showing). `enabled=False` shows nothing (a rank that is
    not the main one).
    """

    def __init__(
        self,
        total: int | None,
        what: str,
        *,
        unit: str = "",
        every_s: float = EVERY_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        enabled: bool = True,
        bar: bool = True,
        transient: bool = True,
    ) -> None:
        self.total = None if total is None else int(total)
        self.what = what
        self.unit = unit
        self.every_s = float(every_s)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = 0
        self.lines = enabled and not is_terminal(self.stream)
        self._bar_wanted = enabled and bar and not self.lines
        self._transient = transient
        self._bar: Any = None
        self._task: Any = None
        self._start = self._last = 0.0
        self._closed = self._written = False

    def __enter__(self) -> ProgressLines:
        self._start = self._last = self.clock()
        if self._bar_wanted:
            self._bar = self._open_bar()
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done; write a line when `every_s` has passed since the last."""
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        if self.lines:
            now = self.clock()
            if now - self._last >= self.every_s:
                self._last, self._written = now, True
                self._write(self._line(now))

    def close(self) -> None:
        """End the step: the final line (lines mode), or stop the bar."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.stop()
        now = self.clock()
        if self.lines and (self._written or now - self._start >= self.every_s):
            self._write(self._line(now, final=True))

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self._start, 0.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        unit = f" {self.unit}" if self.unit else ""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        if final:
            tail = f"took {clock_text(elapsed)}"
        elif self.total is None:
            tail = "ETA ?"
        elif rate > 0:
            tail = f"ETA {clock_text(max(self.total - self.done, 0) / rate)}"
        else:
            tail = "ETA ?"
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        return f"{stamp} {self.what}: {count}{unit} ({rate:.1f}/s, {tail})"

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken log: progress is never fatal
            self.lines = False

    def _open_bar(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        if self.stream is sys.stderr:  # follows sys.stderr, so other prints pass above the bar
            console = Console(stderr=True)
        elif self.stream is sys.stdout:
            console = Console()
        else:
            console = Console(file=self.stream, force_terminal=True)
        bar = Progress(
            TextColumn(self.what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=self._transient,
        )
        self._task = bar.add_task(self.what, total=self.total)
        return bar


def progress_lines(
    iterable: Iterable[T], total: int | None = None, what: str = "", **kw: Any
) -> Iterator[T]:
    """Yield from `iterable`, showing `ProgressLines` (one unit per item; `total` defaults
    to `len(iterable)` where it has one). Keyword arguments go to `ProgressLines`."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:  # a generator, an iterable dataset's loader
            total = None
    with ProgressLines(total, what, **kw) as progress:
        for item in iterable:
            yield item
            progress.advance()
