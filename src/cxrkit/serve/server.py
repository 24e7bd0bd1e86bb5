"""Run the app under uvicorn with a graceful stop: SIGTERM/SIGINT drain, then exit 0.

On the first SIGTERM or SIGINT uvicorn stops accepting connections, closes idle
keep-alive connections, lets in-flight requests finish (each gets its full answer, up to
`ServeSettings.shutdown_grace_s`), then runs the app's shutdown (the decode pool's
workers are stopped). A second SIGINT forces the exit. Unlike `uvicorn.run`, the signal
is not raised again afterwards, so a drained server exits with status 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from cxrkit.serve.settings import ServeSettings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """A uvicorn Server whose stop signals end the process normally (exit 0) once drained."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Route SIGINT/SIGTERM to uvicorn's graceful exit; restore the handlers after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_server(app: Any, host: str, port: int, settings: ServeSettings) -> bool:
    """Serve `app` on host:port until a stop signal; True when it started and drained."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = GracefulServer(config)
    server.run()
    return bool(server.started)
