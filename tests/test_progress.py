"""`cxrkit.progress`: timestamped lines at the interval in a log, the rich bar on a terminal."""

from __future__ import annotations

import io
import re
import time

import pytest

from cxrkit.progress import ProgressLines, clock_text, is_terminal, progress_lines

LINE = re.compile(
    r"^(\d\d:\d\d:\d\d) (?P<what>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) "
    r"\((?P<rate>[\d.]+)/s, (?P<tail>ETA \d\d:\d\d|took \d\d:\d\d)\)$"
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class TtyStream(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _parsed(stream: io.StringIO) -> list[re.Match[str]]:
    lines = stream.getvalue().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m]


def test_lines_come_at_the_interval_with_rate_and_eta() -> None:
    clock, stream = FakeClock(), io.StringIO()
    items = []
    # 100 items, 2 s each: a line every 30 s of the fake clock, then the final line
    for item in progress_lines(
        range(100), what="CNN codes", unit="batches", stream=stream, clock=clock, every_s=30
    ):
        items.append(item)
        clock.now += 2.0
    assert items == list(range(100))  # the wrapped iterable is passed through unchanged
    lines = _parsed(stream)
    assert len(lines) == 200 // 30 + 1  # at 30, 60, ..., 180 s, plus the final line
    for k, m in enumerate(lines[:-1], start=1):
        assert m["what"] == "CNN codes" and m["unit"] == "batches" and m["total"] == "100"
        assert int(m["done"]) == 15 * k  # the line written after 30 k seconds
        assert float(m["rate"]) == pytest.approx(0.5)
        left = (100 - 15 * k) * 2.0
        assert m["tail"] == f"ETA {clock_text(left)}"
    stamp = time.strftime("%H:%M:%S", time.localtime(clock.now - 2.0 * (100 - 15)))
    assert lines[0].group(1) == stamp  # the wall time of that moment, HH:MM:SS
    final = lines[-1]
    assert final["done"] == "100" and final["tail"] == "took 03:20"


def test_lines_are_never_closer_than_the_interval() -> None:
    clock, stream = FakeClock(), io.StringIO()
    with ProgressLines(1000, "segment", unit="films", stream=stream, clock=clock) as bar:
        for _ in range(1000):
            clock.now += 0.7
            bar.advance()
    times = [int(m["done"]) * 0.7 for m in _parsed(stream)[:-1]]
    assert times and all(b - a >= 30.0 - 1e-9 for a, b in zip([0.0, *times], times, strict=False))


def test_a_short_step_writes_nothing_and_a_terminal_gets_no_lines() -> None:
    clock, stream = FakeClock(), io.StringIO()
    for _ in progress_lines(range(10), what="quick", stream=stream, clock=clock):
        clock.now += 1.0
    assert stream.getvalue() == ""  # 10 s < 30 s: nothing for a log to read
    tty = TtyStream()
    assert is_terminal(tty)
    for _ in progress_lines(range(50), what="CNN codes", stream=tty, clock=clock, bar=False):
        clock.now += 5.0
    assert tty.getvalue() == ""  # a terminal gets the bar (here none), never the lines


def test_a_terminal_gets_the_rich_bar() -> None:
    tty = TtyStream()
    with ProgressLines(4, "evaluate", stream=tty, transient=False) as bar:
        for _ in range(4):
            bar.advance()
    shown = tty.getvalue()
    assert "evaluate" in shown and "4/4" in shown  # the rich bar's M/N column
    assert not any(LINE.match(line) for line in shown.splitlines())


def test_unknown_total_and_disabled() -> None:
    clock, stream = FakeClock(), io.StringIO()
    for _ in progress_lines(iter(range(40)), what="overlap", stream=stream, clock=clock):
        clock.now += 1.0
    first = stream.getvalue().splitlines()[0]
    assert re.search(r"overlap: 30 \(1\.0/s, ETA \?\)$", first), first
    quiet = io.StringIO()
    for _ in progress_lines(range(40), what="x", stream=quiet, clock=clock, enabled=False):
        clock.now += 10.0
    assert quiet.getvalue() == ""  # a rank other than the main one


def test_clock_text() -> None:
    assert clock_text(0) == "00:00" and clock_text(75) == "01:15"
    assert clock_text(3725) == "1:02:05"
