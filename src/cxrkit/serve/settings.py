"""The server's knobs: upload and pixel limits, timeout, concurrency, rate limit, bearer token."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Environment variable holding the optional bearer token of the API.
TOKEN_ENV = "CXR_API_TOKEN"

MB = 1024 * 1024


def _token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server; defaults suit a CPU box serving single films.

    `max_upload_bytes`: largest accepted file (the request body may exceed it by
    `multipart_slack` bytes of form headers); `max_pixels`: decompression-bomb guard
    passed to `read_image_bytes` (real chest films are at most ~20 Mpx);
    `timeout_s`: a prediction (queueing included) that takes longer gets 504;
    `max_concurrent`: CAM / preview computations at once (1 keeps all cores on one film);
    `max_queue`: predictions waiting or running before new ones get 503 + Retry-After;
    `max_batch`: films the model takes in one forward (micro-batching; 1: one at a time);
    `batch_wait_ms`: how long the first film of a batch waits for others to join it;
    `token`: bearer token required on /v1/* when set (default: $CXR_API_TOKEN);
    `decode_workers`: processes decoding uploads (`cxrkit.io.pool.DecodePool`; 0 decodes
    in the server process, for debugging only); `decode_memory_mb`: each worker's memory
    cap (RLIMIT_AS) above its start size; `decode_timeout_s`: one decode's time limit;
    `rate_limit`: requests a second per client (per IP, or per valid token when a token
    is set; `/healthz` exempt; 0 = no limit), `rate_burst`: requests a client may send at
    once before the rate applies (over it: 429 with Retry-After);
    `shutdown_grace_s`: on SIGTERM/SIGINT, how long in-flight requests may take to finish.
    """

    max_upload_bytes: int = 50 * MB
    multipart_slack: int = 64 * 1024
    max_pixels: int = 50_000_000
    timeout_s: float = 60.0
    max_concurrent: int = 1
    max_queue: int = 64
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    preview_size: int = 512
    token: str | None = field(default_factory=_token_from_env)
    decode_workers: int = 2
    decode_memory_mb: int = 2048
    decode_timeout_s: float = 20.0
    rate_limit: float = 50.0
    rate_burst: int = 100
    shutdown_grace_s: float = 90.0

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: the file limit plus room for multipart headers."""
        return self.max_upload_bytes + self.multipart_slack
