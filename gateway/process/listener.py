"""The public listener's connection protocol: aiohttp's low-level server plus a header-read timeout.

Role in the pipeline: step 0 (accept). aiohttp parses requests with bounded line and header sizes
(``max_line_bytes``, ``max_header_bytes``, ``max_headers``; oversize heads are answered 400 by aiohttp
itself before any of our code runs). What aiohttp lacks is a bound on how long a client may take to send
its request head (slow-loris): :class:`HeadTimeoutHandler` closes a connection whose *first* request head
is not complete within ``header_read_timeout_s``. Later requests on a keep-alive connection are bounded by
aiohttp's keep-alive timeout between requests (documented limitation).

Requests our pipeline never sees still get the gateway's error shape (ground rule 4): a request aiohttp's
parser rejects (bad request line, bad header token, duplicate Content-Length, oversize line ...) is answered
by :meth:`HeadTimeoutHandler.handle_error` with the built-in group-response JSON (``APIG.0201``, the parser's
status, a fixed message that never echoes the request bytes) and logged at DEBUG without a traceback, since
it is the client's fault. A request whose HTTP version is not 1.x (``HTTP/2.0`` in plain text) is marked by
:meth:`PublicServer._make_request` and answered 505 by the server, on an ``HTTP/1.1`` status line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import orjson
from aiohttp import http_exceptions, web
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from gateway.model.context import SERVER_HEADER

log = logging.getLogger("gateway.process.listener")
pipeline_log = logging.getLogger("gateway.pipeline.handle")

# BaseRequest key set when the request line named an HTTP version other than 1.0/1.1 (value: "major.minor")
BAD_VERSION_KEY = web.RequestKey("gateway.bad_http_version", str)

_PARSER_MESSAGES: tuple[tuple[type[BaseException], str], ...] = (
    (http_exceptions.LineTooLong, "Request line or header field too long."),
    (http_exceptions.BadHttpMethod, "Invalid HTTP method."),
    (http_exceptions.InvalidURLError, "Invalid request URI."),
    (http_exceptions.InvalidHeader, "Invalid request header."),
    (http_exceptions.BadStatusLine, "Invalid request line."),
)


def parser_error_message(exc: BaseException | None) -> str:
    """A fixed, caller-safe message for a parser rejection (aiohttp's own text echoes the request bytes)."""
    for cls, message in _PARSER_MESSAGES:
        if isinstance(exc, cls):
            return message
    return "Bad request."


def error_response(status: int, code: str, message: str) -> web.Response:
    """The built-in group-response body (no group is known before the request is parsed)."""
    request_id = os.urandom(16).hex()
    body = orjson.dumps({"error_code": code, "error_msg": message, "request_id": request_id})
    resp = web.Response(status=status, body=body, content_type="application/json", charset="utf-8")
    resp.headers["Server"] = SERVER_HEADER
    resp.headers["X-Request-Id"] = request_id
    return resp


class HeadTimeoutHandler(RequestHandler):
    head_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.head_timeout_s, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        request = self._current_request
        if request is not None and self._messages and isinstance(self._messages[-1][0], _ErrInfo) \
                and not request.content.is_eof():
            # aiohttp's C parser reports a framing error in the body of the request being handled (bad chunk
            # size) as a new bad *request* and leaves the current body waiting forever: fail that body instead,
            # so the handler answers 400 now rather than hanging until a backend timeout.
            request.content.set_exception(RequestPayloadError("malformed request body"))
        timer = getattr(self, "_head_timer", None)
        if timer is not None and self._request_count > 0:
            timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp calls this for requests its parser rejected (status 4xx) and for exceptions escaping the
        request handler (500; never expected: the pipeline renders its own errors)."""
        if request.writer.output_size > 0:  # part of a response is out: the connection is broken anyway
            raise ConnectionError("response already started")
        if status >= 500:
            pipeline_log.error("unhandled error outside the pipeline from %s", request.remote, exc_info=exc)
            resp = error_response(500, "APIG.0601", "Internal server error.")
        else:
            log.debug("rejected unparsable request from %s: %r", request.remote, exc)
            resp = error_response(status, "APIG.0201", parser_error_message(exc))
        resp.force_close()
        return resp

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._request_count == 0 and self.transport is not None:
            self.transport.close()


class PublicServer(web.Server):
    """``web.Server`` whose connections use :class:`HeadTimeoutHandler`."""

    def __init__(self, *args: Any, head_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout_s = head_timeout_s

    def _make_request(self, message: RawRequestMessage, *args: Any, **kwargs: Any) -> web.BaseRequest:
        version = message.version
        if version.major != 1 or version.minor > 1:
            # aiohttp would answer on an "HTTP/<their version>" status line: answer 505 on HTTP/1.1 instead
            message = message._replace(version=HttpVersion11, should_close=True)
            request = super()._make_request(message, *args, **kwargs)
            request[BAD_VERSION_KEY] = f"{version.major}.{version.minor}"
            return request
        return super()._make_request(message, *args, **kwargs)

    def __call__(self) -> RequestHandler:
        handler = HeadTimeoutHandler(self, loop=self._loop, **self._kwargs)
        handler.head_timeout_s = self._head_timeout_s
        return handler
