"""A minimal aiohttp backend for benchmarks: answers every request with a small JSON body."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

BODY = b'{"hello":"world","items":[1,2,3]}'


async def handle(request: web.BaseRequest) -> web.Response:
    if request.body_exists:
        await request.read()
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def serve() -> None:
        server = web.Server(handle, access_log=None)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
