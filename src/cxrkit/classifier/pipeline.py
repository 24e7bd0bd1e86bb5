"""Films read ahead of the network: decode, prepare and screening input in worker processes.

`prepared_batches` yields collated batches (`collate_films`, numpy images) in the order of
the films while `workers` processes read the next ones, so decoding overlaps inference.
At most `ahead` films are in flight, so memory stays flat however long the folder is.
Workers are forked when the first batch is asked for (the film list and the preparation
are inherited, not pickled); one that dies (a decoder crash) stops the job with an error
naming the film, never a hang. No torch: the graph runtimes run through here without it.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cxrkit.classifier.films import FilmFiles, collate_films, film_name
from cxrkit.errors import CxrkitError

#: The films of the running job, inherited by forked workers (set before they start).
_FILMS: FilmFiles | None = None


class DecodeWorkerDied(CxrkitError):
    """A worker process died while reading a film (e.g. a decoder crash)."""


def _item(i: int) -> dict[str, Any]:
    assert _FILMS is not None, "decode worker started without its films"
    return _FILMS.item(i)


def prepared_batches(
    films: FilmFiles, *, batch_size: int = 32, workers: int = 2, ahead: int | None = None
) -> Iterator[dict[str, Any]]:
    """Collated batches of `films` in order; items are read in `workers` processes
    (0: in this one), at most `ahead` films (default: two batches per worker, at least
    two batches) beyond the one being yielded."""
    n = len(films)
    if workers <= 0 or n <= 1:
        for start in range(0, n, batch_size):
            yield collate_films([films.item(i) for i in range(start, min(n, start + batch_size))])
        return
    ahead = ahead or max(2 * batch_size, workers * batch_size * 2)
    global _FILMS
    _FILMS = films
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=min(workers, n), mp_context=context)
    pending: deque[tuple[int, Future[dict[str, Any]]]] = deque()
    submitted = 0
    try:
        batch: list[dict[str, Any]] = []
        for i in range(n):
            while submitted < n and submitted < i + ahead:
                pending.append((submitted, pool.submit(_item, submitted)))
                submitted += 1
            index, future = pending.popleft()
            try:
                batch.append(future.result())
            except BrokenProcessPool as exc:
                raise DecodeWorkerDied(
                    f"a decode worker died reading {film_name(films.films, index)} or a film "
                    "near it (a crashing decoder); run with num_workers=0 to find it"
                ) from exc
            if len(batch) == batch_size:
                yield collate_films(batch)
                batch = []
        if batch:
            yield collate_films(batch)
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        _FILMS = None
