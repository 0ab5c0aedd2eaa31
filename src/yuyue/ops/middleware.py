"""Pure ASGI middleware: security headers, body size limit, request metrics and log lines,
and the test clock refresh (Edge); answers that routes published for repeating from memory
(AnswerCache). Pure ASGI (not BaseHTTPMiddleware) to keep the hot path short."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yuyue.clock import clock
from yuyue.db import DATABASE_UNAVAILABLE
from yuyue.errors import PROBLEM_JSON, problem
from yuyue.ops.logging import log
from yuyue.ops.metrics import LATENCY, REQUESTS

Header = tuple[bytes, bytes]

CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors "
)
BASE_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# Consoles, kiosk, API and everything else: never framed, not even by our own pages.
STRICT_HEADERS = [
    *BASE_HEADERS,
    (b"content-security-policy", CSP + b"'none'"),
    (b"x-frame-options", b"DENY"),
]
SECURITY_HEADERS = STRICT_HEADERS  # what an answer gets before the settings are known


def citizen_page(path: str) -> bool:
    """The citizen pages (web/api.py), the only answers a partner's app or portal may frame
    (YUYUE_FRAME_ANCESTORS); the hall display (/halls/{id}/display) is a console page."""
    if path in ("/", "/halls", "/confirm", "/book", "/bookings", "/login", "/logout", "/elder"):
        return True
    if path.startswith(("/services/", "/bookings/", "/login/", "/waitlist/")):
        return True
    return path.startswith("/halls/") and path.count("/") == 2


def security_headers(production: bool, frame_ancestors: list[str]) -> tuple[list[Header], list[Header]]:
    """(citizen pages, everything else). Citizen pages may be framed by our own origin and the
    partner origins listed; with none listed, X-Frame-Options SAMEORIGIN says the same to old
    browsers (it cannot name other origins, so it is left out when some are listed). HSTS in
    production only."""
    hsts = [HSTS] if production else []
    sources = b" ".join([b"'self'", *(origin.encode() for origin in frame_ancestors)])
    citizen = [*BASE_HEADERS, (b"content-security-policy", CSP + sources), *hsts]
    if not frame_ancestors:
        citizen.append((b"x-frame-options", b"SAMEORIGIN"))
    return citizen, [*STRICT_HEADERS, *hsts]


class Edge:
    """Outermost layer of the app."""

    def __init__(self, app: ASGIApp, *, max_body: int, engine: Any, settable_clock: bool) -> None:
        self.app = app
        self.max_body = max_body
        self.engine = engine
        self.settable_clock = settable_clock
        self.headers: tuple[list[Header], list[Header]] | None = None

    def _security(self, scope: Scope) -> list[Header]:
        """The security headers of this answer, from the app's settings (read once)."""
        if self.headers is None:
            settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            if settings is None:
                return SECURITY_HEADERS
            self.headers = security_headers(settings.production, settings.frame_ancestor_list)
        citizen, other = self.headers
        return citizen if citizen_page(scope.get("path", "")) else other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]
        security = self._security(scope)

        declared, content_type = False, b""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                declared = True
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await self._too_large(send, security)
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
        json_body = json_content(content_type)
        if (not declared or json_body) and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # A chunked body (no Content-Length), or a JSON one: read it here, within the limit,
            # then replay it. A JSON body naming a key twice is refused here, for every route.
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._too_large(send, security)
                    self._observe(scope, 413, started)
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
            whole, replayed = b"".join(chunks), [False]
            twice = duplicate_key(whole) if json_body else None
            if twice is not None:
                await _send_problem(
                    send, 422, "validation_error", f"body: the key {twice!r} appears more than once", security
                )
                self._observe(scope, 422, started)
                return

            async def replay() -> Message:
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": whole, "more_body": False}
                return await receive()

            downstream = replay

        responded = [False]
        head = scope.get("method") == "HEAD"
        if head:
            # HEAD is GET without the body (RFC 9110 §9.3.2): link checkers, monitors and proxies
            # send it to every page. The routes see a GET; the answer keeps its headers and
            # Content-Length, and its body is dropped here.
            scope = {**scope, "method": "GET"}
        head_done = [False]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                responded[0] = True
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(security)
                message["headers"] = headers
            elif head and message["type"] == "http.response.body":
                if head_done[0]:
                    return  # the empty body is sent; a streaming route's later parts are dropped
                head_done[0] = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            if self.settable_clock:
                await clock.refresh(self.engine)
            await self.app(scope, downstream, send_with_headers)
        except BodyTooLarge:
            await self._too_large(send, security)
            status_holder[0] = 413
        except Exception as exc:  # the last line of defence: a problem+json, never a trace
            if responded[0]:
                raise
            if isinstance(exc, DATABASE_UNAVAILABLE):  # PostgreSQL down or restarting: retry shortly
                log.warning("database_error", error=type(exc).__name__)
                status_holder[0] = 503
                await _send_problem(
                    send, 503, "unavailable", "the database is busy; retry shortly", security, retry_after="1"
                )
                return
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
            if status_holder[0] != 500:
                raise
            await _send_problem(send, 500, "internal_error", "an unexpected error occurred", security)
        finally:
            self._observe(scope, status_holder[0], started)

    async def _too_large(self, send: Send, security: list[Header]) -> None:
        await _send_problem(
            send, 413, "payload_too_large", f"bodies are limited to {self.max_body} bytes", security
        )

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        method = scope.get("method", "")
        key = (method, template, status)
        series = _series.get(key)
        if series is None:  # labels() takes a lock and checks the names: once per route and status
            series = (
                REQUESTS.labels(method=method, route=template, status=str(status)),
                LATENCY.labels(method=method, route=template),
            )
            _series[key] = series
        series[0].inc()
        series[1].observe(elapsed)
        if status >= 500:
            log.error("request", method=method, route=template, status=status, ms=round(elapsed * 1000, 1))
        else:
            log.debug("request", method=method, route=template, status=status, ms=round(elapsed * 1000, 1))


# The metric series of each (method, route template, status) seen; route templates are a fixed set
# ("unmatched" for the rest), so this stays small.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


class BodyTooLarge(Exception):
    pass


def json_content(content_type: bytes) -> bool:
    """A body FastAPI reads as JSON: no Content-Type, `application/json` or any `+json` type."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return not media or media == b"application/json" or media.endswith(b"+json")


def duplicate_key(body: bytes) -> str | None:
    """The first key that an object of this JSON body names twice (issue 19: JSON parsers disagree
    on which one wins, so a signed or checked body could mean one thing here and another there).
    None when there is none, or when the body is not JSON (the route's parser answers that)."""
    if b"{" not in body:
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items) and not found:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return obj

    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


async def _send_problem(
    send: Send, status: int, code: str, detail: str, security: list[Header], retry_after: str | None = None
) -> None:
    body = json.dumps(problem(status, code, detail)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *security,
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- answers repeated from memory (decision 0013) ----------------------------------------------


@dataclass(frozen=True)
class _Published:
    body: bytes
    headers: list[tuple[bytes, bytes]]
    route: Any
    valid: Callable[[], bool]


_published: dict[tuple[str, bytes], _Published] = {}
PUBLISHED_MAX = 10_000


def publish(scope: Scope, body: bytes, media_type: str, valid: Callable[[], bool]) -> None:
    """A route's `200` answer to this GET (same path, same query string, whoever asks) may be sent
    again from memory, without routing, dependencies or the database, while `valid()` is true.
    Only for public answers that depend on nothing else in the request."""
    if scope.get("method") != "GET":
        return
    if len(_published) >= PUBLISHED_MAX:
        _published.clear()
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    _published[(scope["path"], scope.get("query_string", b""))] = _Published(
        body, headers, scope.get("route"), valid
    )


class AnswerCache:
    """Answers a GET that a route published (`publish`) while the answer is valid; anything else
    goes on to the routes. It sits after the rate limits, so every request is still counted, and
    inside Edge, so headers, metrics and logs are the same as for a routed answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            key = (scope["path"], scope.get("query_string", b""))
            hit = _published.get(key)
            if hit is not None:
                if hit.valid():
                    scope["route"] = hit.route  # the route template, for metrics and logs
                    await send({"type": "http.response.start", "status": 200, "headers": list(hit.headers)})
                    await send({"type": "http.response.body", "body": hit.body})
                    return
                _published.pop(key, None)
        await self.app(scope, receive, send)
