"""gateway.lib.resp: the lean pipelined EVALSHA connection of the Redis throttle store, against a real
redis-server (reply parsing, pipelining order, errors, reconnect, which clients get it)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gateway.lib.resp import RespClient, encode, for_client, parse


def test_encode_and_parse_round_trip_shapes() -> None:
    assert encode(("EVALSHA", "ab", 2, b"k")) == b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$1\r\nk\r\n"
    buf = b"$5\r\nhello\r\n+OK\r\n:42\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n-NOSCRIPT No matching script\r\n-ERR x\r\n"
    pos, out = 0, []
    while pos < len(buf):
        value, pos = parse(buf, pos)
        out.append(value)
    assert out[:5] == [b"hello", b"OK", 42, None, [b"a", 1]]
    assert isinstance(out[5], NoScriptError) and isinstance(out[6], ResponseError)
    for partial in (b"$5\r\nhel", b"*2\r\n$1\r\na\r\n", b":4"):
        value, pos = parse(partial, 0)
        assert pos == 0 and value is not None and not isinstance(value, (bytes, int, list))


async def test_evalsha_pipelined_in_order(redis_url: str) -> None:
    r = aredis.Redis.from_url(redis_url)
    try:
        sha = await r.script_load("return ARGV[1] .. ':' .. KEYS[1]")
        c = for_client(r)
        assert c is not None
        replies = await asyncio.gather(*(c.evalsha(sha, 1, f"k{i}", str(i)) for i in range(200)))
        assert replies == [f"{i}:k{i}".encode() for i in range(200)]
        with pytest.raises(NoScriptError):
            await c.evalsha("0" * 40, 0)
        assert await c.evalsha(sha, 1, "k", "still fine") == b"still fine:k"  # an error does not break the stream
        c.reset()  # dropped: the next call reconnects
        assert await c.evalsha(sha, 1, "again", "x") == b"x:again"
        await c.close()
    finally:
        await r.aclose()


async def test_unreachable_server_is_a_connection_error() -> None:
    from tests.conftest import free_port

    c = RespClient("127.0.0.1", free_port(), connect_timeout=0.5)
    with pytest.raises(RedisConnectionError):
        await c.evalsha("0" * 40, 0)
    results = await asyncio.gather(*(c.evalsha("0" * 40, 0) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(x, RedisConnectionError) for x in results)


async def test_only_plain_single_server_clients_get_it(redis_url: str) -> None:
    assert for_client(aredis.Redis.from_url(redis_url)) is not None
    assert for_client(aredis.Redis.from_url("rediss://127.0.0.1:6390/0")) is None  # TLS stays with redis-py
    assert for_client(aredis.Redis.from_url("unix:///tmp/nothing.sock")) is None
    assert for_client(object()) is None
