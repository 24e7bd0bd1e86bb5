"""Run fuzz cases through their target (`read_image_bytes`, or a target of
`fuzz_targets`) in killable worker processes.

Each worker (this file run as a script) classifies cases with
`fuzz_targets.classify_target` under an address-space limit; the parent gives every case
a deadline, so a hang is counted (and the worker replaced), and a worker that dies counts
as a crash.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cxrkit.io.frames import FrameEOF, FrameTimeout  # noqa: E402
from cxrkit.io.pool import ProcessWorker, exit_reason, worker_env  # noqa: E402
from fuzz_outcomes import Tally  # noqa: E402
from fuzzing import Case  # noqa: E402

Progress = Callable[[int], None]


def _start(memory_mb: int) -> ProcessWorker:
    worker = ProcessWorker([sys.executable, __file__, str(memory_mb)], env=worker_env())
    worker.wait_ready()
    return worker


def run_cases(
    cases: Iterable[Case],
    *,
    workers: int = 2,
    timeout_s: float = 10.0,
    memory_mb: int = 2048,
    progress: Progress | None = None,
) -> Tally:
    """Classify every case in `workers` processes; returns the tally."""
    tally, lock = Tally(), threading.Lock()
    source: Iterator[Case] = iter(cases)
    done = [0]

    def next_case() -> Case | None:
        with lock:
            return next(source, None)

    def drive() -> None:
        worker = _start(memory_mb)
        try:
            while (case := next_case()) is not None:
                try:
                    worker.send_json({"name": case.name, "target": case.target})
                    worker.send(case.data)
                    answer = worker.read_json(time.monotonic() + timeout_s)
                    outcome, detail = answer["outcome"], answer["detail"]
                except FrameTimeout:
                    outcome, detail = "hang", f"no answer in {timeout_s:g} s"
                    worker.kill()
                    worker = _start(memory_mb)
                except (FrameEOF, OSError, ValueError) as exc:
                    outcome, detail = "crash", f"worker died ({exit_reason(worker.kill())}; {exc})"
                    worker = _start(memory_mb)
                with lock:
                    tally.add(case, outcome, detail)
                    done[0] += 1
                    if progress is not None:
                        progress(done[0])
        finally:
            worker.close()

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def _worker_main(memory_mb: int) -> int:
    """Classify cases from stdin until it closes (protocol of cxrkit.io.frames)."""
    import os

    from cxrkit.io.decode_worker import apply_limits, read_requests
    from cxrkit.io.frames import write_json
    from fuzz_targets import classify_target
    from fuzzing import quiet_pydicom

    out = os.dup(1)
    os.dup2(2, 1)
    quiet_pydicom()
    import cxrkit.card  # noqa: F401  (warm: imports are not part of a case's time)
    import cxrkit.io.dicom  # noqa: F401
    import cxrkit.segment.data  # noqa: F401

    apply_limits(memory_mb * 1024 * 1024)
    write_json(out, {"ready": True})
    for header, data in read_requests():
        target = str(header.get("target", "film"))
        write_json(out, classify_target(target, data, str(header["name"])))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(int(sys.argv[1])))
