"""Per-client request rate limit: a token bucket per IP (or per valid token), answered 429.

`RateLimitMiddleware` sits outermost, so a client over its rate costs the server one dict
look-up: no body is read, no decode or prediction is queued. `/healthz` is never limited
(monitors must not see 429). Buckets live in a bounded LRU map: a flood of addresses
evicts the least recently seen buckets, which had refilled anyway.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from hmac import compare_digest  # constant time, like the token check of the app

from cxrkit.serve.limits import ASGIApp, Receive, Scope, Send, send_json

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_UNITS |= {"h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")
EXEMPT_PATHS = ("/healthz",)


def parse_rate(text: str) -> float:
    """Requests per second from '20/s', '600/min', '5000/h'; 'off' or '0' gives 0 (no limit)."""
    value = text.strip().lower()
    if value in ("off", "none", "0", ""):
        return 0.0
    match = _RATE.match(value)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"rate {text!r}: write N/s, N/min or N/h (or 'off')")
    return float(match.group(1)) / _UNITS[match.group(2)]


@dataclass
class Bucket:
    """Tokens left and when they were last counted."""

    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key: `rate` tokens a second, at most `burst` saved up.

    `take(key)` spends a token and returns 0.0, or returns the seconds until one is
    available. At most `max_keys` buckets are kept (least recently used dropped first).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.max_keys, self.clock = rate, float(burst), max_keys, clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one token of `key`: 0.0 when allowed, else seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(scope: Scope, token: str | None) -> str:
    """'token' for a request bearing the server's valid token, else 'ip:<address>'."""
    if token is not None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and compare_digest(
                    given.strip().encode(), token.encode()
                ):
                    return "token"
                break
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Answer 429 (JSON, Retry-After in whole seconds) to a client over its rate."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, token: str | None = None) -> None:
        self.app, self.token = app, token
        self.buckets = TokenBuckets(rate, burst)
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_key(scope, self.token))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        self.refused += 1
        retry = max(1, math.ceil(wait))
        await send_json(
            send,
            429,
            {
                "detail": f"rate limit: too many requests from this client, retry in {retry} s",
                "error": "rate_limited",
            },
            headers=[(b"retry-after", str(retry).encode()), (b"cache-control", b"no-store")],
        )
