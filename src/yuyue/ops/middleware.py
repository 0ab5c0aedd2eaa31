"""Pure ASGI middleware: security headers, body size limit, request metrics and log lines,
and the test clock refresh. Pure ASGI (not BaseHTTPMiddleware) to keep the hot path short."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yuyue.clock import clock
from yuyue.errors import PROBLEM_JSON, problem
from yuyue.ops.logging import log
from yuyue.ops.metrics import LATENCY, REQUESTS

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'",
    ),
    (b"referrer-policy", b"same-origin"),
]


class Edge:
    """Outermost layer of the app."""

    def __init__(self, app: ASGIApp, *, max_body: int, engine: Any, settable_clock: bool) -> None:
        self.app = app
        self.max_body = max_body
        self.engine = engine
        self.settable_clock = settable_clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]

        declared = False
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = True
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await self._too_large(send)
                    self._observe(scope, 413, started)
                    return

        received = [0]

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise BodyTooLarge
            return message

        downstream: Receive = limited_receive
        if not declared and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # A chunked body (no Content-Length): read it here, within the limit, then replay it.
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._too_large(send)
                    self._observe(scope, 413, started)
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
            whole, replayed = b"".join(chunks), [False]

            async def replay() -> Message:
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": whole, "more_body": False}
                return await receive()

            downstream = replay

        responded = [False]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                responded[0] = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        if self.settable_clock:
            await clock.refresh(self.engine)
        try:
            await self.app(scope, downstream, send_with_headers)
        except BodyTooLarge:
            await self._too_large(send)
            status_holder[0] = 413
        except Exception as exc:  # the last line of defence: a problem+json 500, never a trace
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
            if status_holder[0] != 500 or responded[0]:
                raise
            await _send_problem(send, 500, "internal_error", "an unexpected error occurred")
        finally:
            self._observe(scope, status_holder[0], started)

    async def _too_large(self, send: Send) -> None:
        await _send_problem(send, 413, "payload_too_large", f"bodies are limited to {self.max_body} bytes")

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        method = scope.get("method", "")
        REQUESTS.labels(method=method, route=template, status=str(status)).inc()
        LATENCY.labels(method=method, route=template).observe(elapsed)
        if status >= 500:
            log.error("request", method=method, route=template, status=status, ms=round(elapsed * 1000, 1))
        else:
            log.debug("request", method=method, route=template, status=status, ms=round(elapsed * 1000, 1))


class BodyTooLarge(Exception):
    pass


async def _send_problem(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps(problem(status, code, detail)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
