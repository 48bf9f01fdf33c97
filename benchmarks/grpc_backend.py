"""A minimal gRPC backend for benchmarks: ``/bench.Echo/Unary`` echoes the request message (raw bytes, no
protobuf code needed), served by grpcio's asyncio server on cleartext HTTP/2 (h2c)."""

from __future__ import annotations

import asyncio
import sys

import grpc


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),  # bytes in, bytes out
    })
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
