"""Preset answers: a small complete response whose fixed head lines were serialised at config-load time.

Role in the pipeline: the terminal step of a MOCK backend (and any target whose answer is fixed) on the HTTP/1
listener. Instead of an aiohttp ``web.Response`` (a header multidict filled per request, then serialised by
the listener), the target returns a :class:`PresetAnswer`: the status line and the fixed header lines
(``Content-Type``, configured headers, ``Content-Length``) are bytes prepared once, and only the per-request
lines (``Server`` and the other ``ctx.response_headers``, ``X-Request-Id``, the latency headers) are text made
per request. The listener adds ``Date`` and ``Connection`` and writes it with one ``transport.write``.

A target returns one only when the request came through the HTTP/1 listener (``ctx.preset_ok``), the endpoint
has no response hooks (those edit a ``web.Response``), the method is not HEAD, and no per-request header
collides with a fixed one; otherwise it builds the usual ``web.Response``, so every listener and every hook
sees exactly what it saw before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from gateway.core.settings import LATENCY_ALWAYS, LATENCY_OFF
from gateway.lib.h1client import RELAY_DROP
from gateway.model.context import SERVER_HEADER

if TYPE_CHECKING:
    from gateway.model.context import RequestContext

# names a preset head never carries as fixed lines: the listener or the per-request part writes them
RESERVED = frozenset({
    "connection", "content-length", "date", "transfer-encoding", "x-request-id", "x-apig-latency",
    "x-apig-upstream-latency", "server",
})


class PresetAnswer:
    """One answer: the prepared head (per HTTP version), the per-request header lines, the body."""

    __slots__ = ("_head10", "body", "date", "dynamic", "head11", "status")

    prepared = False  # what the pipeline frame asks of a web.StreamResponse (a preset is never streamed)

    def __init__(self, status: int, head11: bytes, head10: bytes | None, dynamic: str, body: bytes,
                 date: bytes | None = None) -> None:
        self.status = status
        self.head11 = head11
        self._head10 = head10  # None: made from head11 when an HTTP/1.0 caller needs it
        self.dynamic = dynamic  # "Name: value\r\n" lines, checked for CR/LF by their maker
        self.body = body
        # None: the listener adds its own ``Date`` line; b"": the head already carries one (a relayed backend's)
        self.date = date

    @property
    def head10(self) -> bytes:
        head = self._head10
        if head is None:
            head = self._head10 = b"HTTP/1.0" + self.head11[8:]
        return head


class PresetHead:
    """The config-load-time part of a preset answer: status line and fixed header lines, for both versions."""

    __slots__ = ("body", "head10", "head11", "names", "status")

    def __init__(self, status: int, head11: bytes, head10: bytes, names: frozenset[str], body: bytes) -> None:
        self.status = status
        self.head11 = head11
        self.head10 = head10
        # lower-case names a per-request line may not carry: the fixed lines' and the listener's own (a
        # ``Server`` line is always per request: ``ctx.response_headers`` holds it)
        self.names = names
        self.body = body

    def answer(self, dynamic: str) -> PresetAnswer:
        return PresetAnswer(self.status, self.head11, self.head10, dynamic, self.body)


# status -> reason phrase (an HTTPStatus lookup per compiled MOCK target costs more than the rest of it)
_REASONS = {int(s): s.phrase for s in HTTPStatus}
# (status, fixed headers, body length) -> (head11, head10, names) or None: most MOCK answers of a snapshot share
# their fixed head; a compile of 100,000 MOCK APIs builds a handful of distinct ones
_HEADS: dict[tuple[int, tuple[tuple[str, str], ...], int], tuple[bytes, bytes, frozenset[str]] | None] = {}
_HEADS_MAX = 4096


def _remember(table: dict[Any, Any], limit: int, key: Any, value: Any) -> Any:
    """Store ``value`` under ``key`` in a bounded memo table (emptied when full); returns ``value``."""
    if len(table) >= limit:
        table.clear()
    table[key] = value
    return value


def preset_head(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> PresetHead | None:
    """The preset head of a fixed answer, or None when it cannot be one (a status without a plain body,
    a header the listener owns, CR/LF inside a header: those take the ``web.Response`` path)."""
    key = (status, tuple(headers), len(body))
    try:
        head = _HEADS[key]
    except KeyError:
        head = _remember(_HEADS, _HEADS_MAX, key, _head(*key))
    if head is None:
        return None
    return PresetHead(status, head[0], head[1], head[2], body)


def _head(status: int, headers: tuple[tuple[str, str], ...], length: int
          ) -> tuple[bytes, bytes, frozenset[str]] | None:
    if status < 200 or status in (204, 304) or status > 999:
        return None
    fixed: CIMultiDict[str] = CIMultiDict()
    for k, v in headers:
        fixed[k] = v  # later values replace earlier ones, as on a web.Response's headers
    names = {k.lower() for k in fixed}
    if names & RESERVED:
        return None
    reason = _REASONS.get(status, "")
    lines = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()) + f"Content-Length: {length}\r\n"
    n = len(fixed) + 1
    if lines.count("\r") != n or lines.count("\n") != n:  # CR or LF inside a name or value
        return None
    tail = lines.encode("utf-8", "surrogateescape")  # as the listener encodes any head
    status_text = f" {status} {reason}\r\n".encode("ascii")
    names |= RESERVED - {"server"}
    return b"HTTP/1.1" + status_text + tail, b"HTTP/1.0" + status_text + tail, frozenset(names)


_SERVER_ONLY = {"Server": SERVER_HEADER}
_SERVER_LINE = f"Server: {SERVER_HEADER}\r\n"
# (names of ctx.response_headers, names they may not use) -> the %-format of their lines (one ``%s`` per value), or
# None when one of them is taken or holds CR/LF; the stage headers' names repeat (the rate-limit ones): made once
_LINE_FORMATS: dict[tuple[tuple[str, ...], frozenset[str]], str | None] = {}
_UNSEEN: Any = object()


def _line_format(rh_names: tuple[str, ...], names: frozenset[str]) -> str | None:
    if any(k.lower() in names or "\r" in k or "\n" in k for k in rh_names):
        return None
    return "".join([f"{k.replace('%', '%%')}: %s\r\n" for k in rh_names])


def dynamic_lines(ctx: RequestContext, names: frozenset[str]) -> str | None:
    """The per-request header lines of a preset answer: ``ctx.response_headers``, ``X-Request-Id`` and the
    latency headers; None when one of them collides with a fixed line or carries CR/LF (the caller then builds
    a ``web.Response``, whose serialisation refuses CR/LF with a 500 as before)."""
    rh = ctx.response_headers
    mode = ctx.latency_mode
    if rh == _SERVER_ONLY:  # the usual case: no stage added a header
        if mode == LATENCY_ALWAYS:  # the default settings: one format, no concat
            if ctx.backend_ms is None:
                return (f"{_SERVER_LINE}X-Request-Id: {ctx.request_id}\r\n"
                        f"X-Apig-Latency: {int((time.perf_counter() - ctx.started) * 1000.0)}\r\n")
            return (f"{_SERVER_LINE}X-Request-Id: {ctx.request_id}\r\n"
                    f"X-Apig-Latency: {int((time.perf_counter() - ctx.started) * 1000.0)}\r\n"
                    f"X-Apig-Upstream-Latency: {int(ctx.backend_ms)}\r\n")
        text = f"{_SERVER_LINE}X-Request-Id: {ctx.request_id}\r\n"
    else:
        key = (tuple(rh), names)  # the stage headers' names repeat (rate-limit headers): checked once
        fmt = _LINE_FORMATS.get(key, _UNSEEN)
        if fmt is _UNSEEN:
            fmt = _line_format(key[0], names)
            if len(_LINE_FORMATS) >= 1024:
                _LINE_FORMATS.clear()
            _LINE_FORMATS[key] = fmt
        if fmt is None:
            return None
        values = tuple(rh.values())
        try:
            joined = "".join(values)
        except TypeError:  # a value that is not a str: its text, as a format would give it
            values = tuple(map(str, values))
            joined = "".join(values)
        if "\r" in joined or "\n" in joined:
            return None
        if mode == LATENCY_ALWAYS:  # the default settings: one format
            lines = fmt % values
            if ctx.backend_ms is None:
                return (f"{lines}X-Request-Id: {ctx.request_id}\r\n"
                        f"X-Apig-Latency: {int((time.perf_counter() - ctx.started) * 1000.0)}\r\n")
            return (f"{lines}X-Request-Id: {ctx.request_id}\r\n"
                    f"X-Apig-Latency: {int((time.perf_counter() - ctx.started) * 1000.0)}\r\n"
                    f"X-Apig-Upstream-Latency: {int(ctx.backend_ms)}\r\n")
        text = f"{fmt % values}X-Request-Id: {ctx.request_id}\r\n"  # the gateway's own hex id
    if mode == LATENCY_ALWAYS or (mode != LATENCY_OFF and ctx.headers.get("X-Apig-Mode", "").lower() == "debug"):
        # the lines set_latency_headers adds to a web.Response (integers: no CR/LF possible)
        text += f"X-Apig-Latency: {int((time.perf_counter() - ctx.started) * 1000.0)}\r\n"
        if ctx.backend_ms is not None:
            text += f"X-Apig-Upstream-Latency: {int(ctx.backend_ms)}\r\n"
    return text


# the listener's own lines: a per-request line of a relayed answer never carries one (else: the web.Response path)
_LISTENER_OWNED = frozenset({"connection", "content-length", "date", "transfer-encoding"})
# relayed backend fields the usual per-request lines replace (``Server`` from ctx.response_headers, our id)
_REPLACED_USUAL = frozenset({"server", "x-request-id"})
_LATENCY = frozenset({"x-apig-latency", "x-apig-upstream-latency"})


def relayed_answer(ctx: RequestContext, status: int, reason: str, fields: list[tuple[str, str]], body: bytes
                   ) -> PresetAnswer | None:
    """A small complete backend answer as a preset answer made per request: the status line and the relayed
    ``fields`` (hop-by-hop and Content-Length already left out) serialised directly, instead of a
    ``web.Response`` the listener then serialises. The same head, up to the order of differently named
    fields: ``ctx.response_headers``, ``X-Request-Id`` and the latency headers replace same-named backend
    fields, ``Content-Type`` defaults to ``application/octet-stream`` for a body, the backend's ``Date`` is kept
    (else the listener adds its own).

    None when the caller must build the ``web.Response`` instead: not the HTTP/1 listener, HEAD, response hooks
    on the endpoint, a status without a plain body, a backend field named like a latency header, or a
    per-request header the listener owns or carrying CR/LF."""
    if not ctx.preset_ok or ctx.method == "HEAD" or status < 200 or status in (204, 304):
        return None
    ep = ctx.endpoint
    if ep is not None and ep.response_hooks:
        return None
    dynamic = dynamic_lines(ctx, _LISTENER_OWNED)
    if dynamic is None:
        return None
    rh = ctx.response_headers
    replaced = _REPLACED_USUAL if rh == _SERVER_ONLY else frozenset(k.lower() for k in rh) | _REPLACED_USUAL
    lines = []
    date: bytes | None = None
    typed = "content-type" in replaced
    for name, value in fields:
        low = name.lower()
        if low in replaced:
            continue
        if low == "content-type":
            typed = True
        elif low == "date":
            date = b""
        elif low in _LATENCY:
            return None
        lines.append(f"{name}: {value}\r\n")
    if body and not typed:
        lines.append("Content-Type: application/octet-stream\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n")
    text = "".join(lines)
    n = len(lines)
    if text.count("\r") != n or text.count("\n") != n:  # the parser refused CR/LF already: never a second line
        return None
    reason = reason or _REASONS.get(status, "")
    if "\r" in reason or "\n" in reason:
        return None
    head = f"HTTP/1.1 {status} {reason}\r\n{text}".encode("utf-8", "surrogateescape")  # as the listener would
    return PresetAnswer(status, head, None, dynamic, body, date)


# what a relayed preset answer cuts out of the backend's header block: hop-by-hop fields and Content-Length (the
# relay frames the body itself), and the fields the usual per-request lines replace (Server, X-Request-Id)
def _cut_rx(names: frozenset[str]) -> re.Pattern[str]:
    return re.compile("\r\n(?:" + "|".join(sorted(map(re.escape, names))) + "):[^\r]*", re.IGNORECASE)


_BLOCK_CUT_RX = _cut_rx(RELAY_DROP | _REPLACED_USUAL)
# the names of ctx.response_headers (stage headers such as the rate-limit ones) -> (their cut, Content-Type set by
# a stage): a handful per configuration
_CUTS: dict[tuple[str, ...], tuple[re.Pattern[str], bool]] = {}
_BLOCK_SEEN_RX = re.compile(r"\r\n(content-type|date|x-apig-latency|x-apig-upstream-latency):", re.IGNORECASE)


# (status, reason, header block, names of ctx.response_headers or None for the usual Server only, body length) ->
# (the head up to the per-request lines, the backend sent a Date), or None: a backend field named like a latency
# header. Backends repeat their heads (the Date changes once a second): the cut runs once per distinct head.
_BLOCK_HEADS: dict[tuple[int, str, str, tuple[str, ...] | None, int], tuple[bytes, bool] | None] = {}
_BLOCK_HEADS_MAX = 512


def relayed_block_answer(ctx: RequestContext, status: int, reason: str, block: str, body: bytes
                         ) -> PresetAnswer | None:
    """:func:`relayed_answer` from the backend's header block as received (``"\\r\\nName: value"`` per field, a
    block the upstream client's strict parser passed whole: no bare CR/LF, no NUL, token names, no field named
    by ``Connection``): the relayed lines are the block with the left-out fields cut by one C call, instead of
    fields split, filtered and joined again. The same head up to blanks around values (passed as received).

    None when the caller must build the ``web.Response`` (as for :func:`relayed_answer`)."""
    if not ctx.preset_ok or ctx.method == "HEAD" or status < 200 or status in (204, 304):
        return None
    ep = ctx.endpoint
    if ep is not None and ep.response_hooks:
        return None
    rh = ctx.response_headers
    key = (status, reason, block, None if rh == _SERVER_ONLY else tuple(rh), len(body))
    try:
        head = _BLOCK_HEADS[key]  # the hit, inline (hot path)
    except KeyError:
        head = _remember(_BLOCK_HEADS, _BLOCK_HEADS_MAX, key, _block_head(*key))
    if head is None:
        return None
    dynamic = dynamic_lines(ctx, _LISTENER_OWNED)
    if dynamic is None:  # a per-request line the listener owns, or CR/LF in one
        return None
    return PresetAnswer(status, head[0], None, dynamic, body, b"" if head[1] else None)


def _block_head(status: int, reason: str, block: str, names: tuple[str, ...] | None, length: int
                ) -> tuple[bytes, bool] | None:
    if names is None:
        block = _BLOCK_CUT_RX.sub("", block)
        typed = False
    else:  # the per-request lines replace same-named backend fields: cut those too
        got = _CUTS.get(names)
        if got is None:
            low = frozenset(k.lower() for k in names)
            got = (_cut_rx(RELAY_DROP | _REPLACED_USUAL | low), "content-type" in low)
            if len(_CUTS) >= 1024:
                _CUTS.clear()
            _CUTS[names] = got
        block = got[0].sub("", block)
        typed = got[1]
    date = False
    for name in _BLOCK_SEEN_RX.findall(block):
        low = name.lower()
        if low == "content-type":
            typed = True
        elif low == "date":
            date = True
        else:  # a backend field named like a latency header
            return None
    typing = "" if typed or not length else "Content-Type: application/octet-stream\r\n"
    head = (f"HTTP/1.1 {status} {reason or _REASONS.get(status, '')}{block}\r\n{typing}"
            f"Content-Length: {length}\r\n").encode("utf-8", "surrogateescape")
    return head, date
