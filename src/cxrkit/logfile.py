"""One log file per run: the `cxrkit` logger written to the run folder."""

from __future__ import annotations

import logging
from pathlib import Path


def attach_log_file(path: str | Path) -> None:
    """Send the `cxrkit` logger to `path` (INFO), replacing a previous run's log file."""
    logger = logging.getLogger("cxrkit")
    logger.setLevel(logging.INFO)
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            h.close()
    fh = logging.FileHandler(path)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
