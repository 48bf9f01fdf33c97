"""A backend on a real socket that records exactly the bytes that arrive, and answers canned bytes.

Unlike the aiohttp echo backend (tests/support/helpers.py) nothing here parses leniently or normalises: the
request line, header names and values are kept as received (case, order, repeats, underscores), so tests can
assert on what a gateway really forwarded. ``answer`` is the raw response written for every request (a
malformed one for upstream-parsing tests); ``close_after`` closes the connection after answering;
``pieces`` splits the answer over several writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str | None:
        return self.target.split("?", 1)[1] if "?" in self.target else None

    def header(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class RawBackend:
    answer: bytes = OK
    close_after: bool = False
    pieces: int = 1  # write the answer in this many separate writes (a head arriving over many reads)
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_requests(self, n: int, timeout: float = 20.0) -> list[RawRequest]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = []
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers.append((name, value.strip()))
                low = {k.lower(): v for k, v in headers}
                body = b""
                if "chunked" in low.get("transfer-encoding", "").lower():
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        chunk = await reader.readexactly(size + 2)
                        body += chunk[:-2]
                        if size == 0:
                            break
                elif "content-length" in low:
                    body = await reader.readexactly(int(low["content-length"]))
                self.requests.append(RawRequest(method, target, version, headers, body))
                self._arrived.set()
                if self.pieces <= 1:
                    writer.write(self.answer)
                    await writer.drain()
                else:
                    step = -(-len(self.answer) // self.pieces)
                    for i in range(0, len(self.answer), step):
                        writer.write(self.answer[i:i + step])
                        await writer.drain()
                        await asyncio.sleep(0.002)  # a slow backend: separate TCP segments
                if self.close_after:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
