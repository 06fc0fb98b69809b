"""Per-client rate limit (token bucket) and the optional read token."""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "smartsla_token"


class TokenBucket:
    """`rate` tokens a second up to `burst`, per key; `take` says whether a request may go on."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 when allowed; otherwise the seconds to wait before the next token."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed = 0.0
            else:
                self._buckets[key] = (tokens, now)
                allowed = (1.0 - tokens) / self.rate
            if len(self._buckets) > self.max_keys:  # forget the idlest clients
                for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: self.max_keys // 10]:
                    del self._buckets[k]
        return allowed


class RateLimitMiddleware:
    """429 with Retry-After once a client (by IP) exceeds its bucket; static files are exempt."""

    def __init__(self, app: ASGIApp, rate: float, burst: int, exempt: tuple[str, ...] = ("/static/",)) -> None:
        self.app = app
        self.bucket = TokenBucket(rate, burst) if rate > 0 else None
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.bucket is None or scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.bucket.take(client[0] if client else "unknown")
        if not wait:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        body = json.dumps({"detail": f"rate limit exceeded: at most {self.bucket.rate:g} requests a second per "
                           f"client (bursts of {self.bucket.burst}); retry after {retry} s"}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", str(retry).encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def token_matches(given: str | None, expected: str | None) -> bool:
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(headers: Any) -> str | None:
    value = headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return str(value[7:].strip())
    return None
