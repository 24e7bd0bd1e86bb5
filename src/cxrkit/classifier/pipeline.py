"""Films read ahead of the network: decode, prepare and screening input in worker processes.

`prepared_batches` yields collated batches (`collate_films`, numpy images) in the order of
the films while `workers` processes read the next ones, so decoding overlaps inference.
Worker k reads batches k, k + workers, k + 2 workers, ... and collates each itself (one
message per batch); its queue holds at most `ahead` batches, so memory stays flat however
long the folder is, and nothing in this process has to wake up to hand out work while the
network holds the cores. Workers are forked when the first batch is asked for (the film
list and the preparation are inherited, not pickled); one that dies (a decoder crash)
stops the job with an error naming its batch, never a hang. No torch: the graph runtimes
run through here without it.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterator
from typing import Any

from cxrkit.classifier.films import FilmFiles, collate_films, film_name
from cxrkit.errors import CxrkitError

#: The films of the running job, inherited by forked workers (set before they start).
_FILMS: FilmFiles | None = None
#: Seconds between checks that a silent worker is still alive.
_POLL_S = 0.5


class DecodeWorkerDied(CxrkitError):
    """A worker process died while reading a film (e.g. a decoder crash)."""


def prepared_batches(
    films: FilmFiles, *, batch_size: int = 32, workers: int = 2, ahead: int = 2
) -> Iterator[dict[str, Any]]:
    """Collated batches of `films` in order; batches are read in `workers` processes
    (0: in this one), each at most `ahead` batches ahead of the network. Where processes
    cannot be forked (Windows) films are read in this process."""
    n = len(films)
    starts = list(range(0, n, batch_size))
    if "fork" not in multiprocessing.get_all_start_methods():
        workers = 0
    workers = min(workers, len(starts))
    if workers <= 0 or n <= 1:
        for start in starts:
            yield _read_batch(films, start, batch_size)
        return
    global _FILMS
    _FILMS = films
    context = multiprocessing.get_context("fork")
    queues = [context.Queue(maxsize=max(1, ahead)) for _ in range(workers)]
    procs = [
        context.Process(
            target=_work,
            args=(k, workers, batch_size, queues[k]),
            daemon=True,
            name=f"cxr-read-{k}",
        )
        for k in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        for b, start in enumerate(starts):
            yield _next(queues[b % workers], procs[b % workers], films, start, batch_size)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        for q in queues:
            q.cancel_join_thread()
            q.close()
        _FILMS = None


def _read_batch(films: FilmFiles, start: int, batch_size: int) -> dict[str, Any]:
    stop = min(len(films), start + batch_size)
    return collate_films([films.item(i) for i in range(start, stop)])


def _work(k: int, workers: int, batch_size: int, out: Any) -> None:
    """Worker `k`: read its batches in order and queue them (blocks while the queue is full)."""
    films = _FILMS
    assert films is not None, "reader started without its films"
    for start in range(k * batch_size, len(films), workers * batch_size):
        out.put(_read_batch(films, start, batch_size))
    out.close()
    out.join_thread()  # everything written before the process exits


def _next(
    q: Any, proc: multiprocessing.process.BaseProcess, films: FilmFiles, start: int, size: int
) -> dict[str, Any]:
    """The next batch from worker `proc`'s queue; `DecodeWorkerDied` if it died first."""
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            if proc.exitcode is None:
                continue  # still reading (a big film, or the cores are busy)
            last = min(len(films), start + size) - 1
            raise DecodeWorkerDied(
                f"a decode worker died (exit code {proc.exitcode}) reading the films "
                f"{film_name(films.films, start)} to {film_name(films.films, last)}; a "
                "crashing decoder? run with num_workers=0 to find the film"
            ) from None
