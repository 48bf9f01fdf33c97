"""gRPC APIs end to end: a real grpcio client -> the gateway's HTTPS listener (test CA) -> a real grpcio server.

Every call runs the real sync grpcio client in a worker thread (the gateway runs on the test's event loop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from tests.support.auth_helpers import APP_CODE, app, grant, iam_token, public_pem, rsa_key
from tests.support.grpc_helpers import GrpcBackend, echo_modules, gateway_channel, grpc_api, stub
from tests.support.h2_helpers import tls_files
from tests.support.helpers import snapshot
from tests.support.throttle_helpers import binding, policy
from tests.support.tls_helpers import TestCA

pb2, _ = echo_modules()
U = "/echo.Echo/Unary"


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def backend(ca) -> AsyncIterator[GrpcBackend]:
    b = GrpcBackend(ca)
    yield b
    await asyncio.to_thread(b.stop)


@pytest.fixture
async def grpc_gw(make_gateway, ca, tmp_path) -> Callable[..., Any]:
    cert, key = tls_files(ca, str(tmp_path))

    async def start(doc: dict[str, Any], **overrides: Any) -> tuple[Any, grpc.Channel]:
        gw = await make_gateway(doc, https_listen="127.0.0.1:0", tls_cert_file=cert, tls_key_file=key,
                                backend_ca_file=ca.write(str(tmp_path)), **overrides)
        channel = gateway_channel(ca, gw.gw.https_port)
        channels.append(channel)
        return gw, channel

    channels: list[grpc.Channel] = []
    yield start
    for ch in channels:
        ch.close()


def _all_methods(addr: str, **extra: Any) -> list[dict[str, Any]]:
    return [grpc_api("g1", "/echo.Echo", addr, match_mode="SWA", **extra)]  # every method of the service


async def test_unary_with_metadata_and_trailers(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr)))
    call = stub(ch).Unary.with_call
    reply, info = await asyncio.to_thread(call, pb2.Msg(text="hi", n=41), metadata=(("x-caller", "c1"),),
                                          timeout=10)
    assert reply.text == "echo:hi" and reply.n == 42
    assert dict(info.trailing_metadata())["x-trailer"] == "t-hi"  # backend trailers forwarded
    assert info.code() == grpc.StatusCode.OK
    name, seen = backend.service.calls[-1]
    assert name == "Unary" and seen["x-caller"] == "c1"
    assert "x-forwarded-for" in seen
    initial = dict(info.initial_metadata())
    assert len(initial["x-request-id"]) == 32


async def test_exact_method_path_and_not_found(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot([grpc_api("g1", U, backend.addr)]))
    s = stub(ch)
    reply = await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), timeout=10)
    assert reply.text == "echo:x"
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(s.ClientStream, iter([pb2.Msg(text="a")]), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "APIG.0101" in info.value.details()


async def test_backend_error_status_forwarded(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr)))
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="bad", fail_code=9), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "failed as asked: bad"


async def test_deadline_shorter_than_backend_delay(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=300)))
    # the API's timeout (300 ms) caps a longer caller deadline
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="slow", delay_ms=3000), timeout=20)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await asyncio.to_thread(backend.service.cancelled.wait, 10)  # the slow call was cancelled upstream
    # a caller deadline shorter than the API's is honoured and passed on to the backend
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=30000)))
    reply = await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="fast"), timeout=5)
    assert 0 < int(reply.blob.decode()) <= 5000
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="slow", delay_ms=3000), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_caller_cancel_reaches_the_backend(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=30000)))
    call = stub(ch).Unary.future(pb2.Msg(text="slow", delay_ms=20000), timeout=30)
    assert await wait_sync(lambda: any(name == "Unary" for name, _ in backend.service.calls))
    call.cancel()  # RST_STREAM from the caller: the gateway resets its backend stream
    assert await asyncio.to_thread(backend.service.cancelled.wait, 10)
    reply = await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="after"), timeout=10)  # the connection lives on
    assert reply.text == "echo:after"


async def test_backend_unavailable(grpc_gw) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods("127.0.0.1:1")))
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "APIG.0202" in info.value.details()


async def test_unauthenticated_and_app_code(grpc_gw, backend) -> None:
    api = grpc_api("g1", "/echo.Echo", backend.addr, match_mode="SWA", auth_type="APP",
                   auth_opt={"app_code_auth_type": "HEADER"})
    doc = snapshot([api], apps=[app("app1")], app_auths=[grant("app1", "g1")],
                   app_codes=[{"id": "c1", "app_id": "app1", "app_code": APP_CODE}])
    _gw, ch = await grpc_gw(doc)
    s = stub(ch)
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), metadata=(("x-apig-appcode", "wrong" * 10),),
                                timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await asyncio.to_thread(s.Unary, pb2.Msg(text="ok"), metadata=(("x-apig-appcode", APP_CODE),),
                                    timeout=10)
    assert reply.text == "echo:ok"


async def test_iam_token(grpc_gw, backend, tmp_path) -> None:
    key = rsa_key()
    pem = tmp_path / "iam.pem"
    pem.write_bytes(public_pem(key))
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, auth_type="IAM")), iam_jwt_public_keys=str(pem))
    s = stub(ch)
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "APIG.0301" in info.value.details()
    reply = await asyncio.to_thread(s.Unary, pb2.Msg(text="iam"), metadata=(("x-auth-token", iam_token(key)),),
                                    timeout=10)
    assert reply.text == "echo:iam"


async def test_h2c_backends_behind_a_vpc_channel(grpc_gw) -> None:
    plain = [GrpcBackend(None), GrpcBackend(None)]
    try:
        api = grpc_api("g1", "/echo.Echo", "", tls=False, match_mode="SWA")
        api["backend_api"].pop("url_domain")
        api["backend_api"].update(vpc_channel_status=1, vpc_channel_info={"vpc_channel_id": "ch1"})
        members = [{"host": "127.0.0.1", "port": b.port, "weight": 1} for b in plain]
        doc = snapshot([api], vpc_channels=[{"id": "ch1", "name": "chan_grpc", "port": 80, "balance_strategy": 1,
                                             "member_type": "ip", "type": 2, "members": members}])
        _gw, ch = await grpc_gw(doc)
        s = stub(ch)
        for i in range(10):
            assert (await asyncio.to_thread(s.Unary, pb2.Msg(text=str(i)), timeout=10)).text == f"echo:{i}"
        assert [len(b.service.calls) for b in plain] == [5, 5]  # round robin over pooled h2c connections
    finally:
        for b in plain:
            await asyncio.to_thread(b.stop)


async def test_calls_beyond_the_backends_stream_limit_wait_for_a_slot(grpc_gw, ca) -> None:
    small = GrpcBackend(ca, max_streams=2)  # 2 streams per connection, at most 4 pooled connections: 8 slots
    try:
        gw, ch = await grpc_gw(snapshot(_all_methods(small.addr, timeout=30000)))
        s = stub(ch)
        calls = [s.Unary.future(pb2.Msg(text=str(i), delay_ms=300), timeout=30) for i in range(20)]  # all at once
        replies = await asyncio.to_thread(lambda: [c.result() for c in calls])
        assert sorted(r.text for r in replies) == sorted(f"echo:{i}" for i in range(20))
        pool = gw.gw.services.extras["grpc.pool"]
        assert sum(len(conns) for conns in pool._conns.values()) == 4  # the pool grew to its bound, no further
    finally:
        await asyncio.to_thread(small.stop)


async def test_denied_by_acl(grpc_gw, backend) -> None:
    doc = snapshot(_all_methods(backend.addr),
                   acls=[{"id": "x", "acl_name": "acl_x", "acl_type": "DENY", "entity_type": "IP",
                          "acl_value": "127.0.0.1"}])
    doc["acl_bindings"] = [{"id": "b1", "acl_id": "x", "publish_id": "p-g1-DEFAULT_ENVIRONMENT_RELEASE_ID"}]
    _gw, ch = await grpc_gw(doc)
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(stub(ch).Unary, pb2.Msg(text="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_throttled_call(grpc_gw, backend) -> None:
    doc = snapshot(_all_methods(backend.addr), throttles=[policy("t1", 2, unit="HOUR")],
                   throttle_bindings=[binding("t1", "g1")])
    gw, ch = await grpc_gw(doc)
    s = stub(ch)
    for _ in range(2):
        assert (await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), timeout=10)).text == "echo:x"
    with pytest.raises(grpc.RpcError) as info:
        await asyncio.to_thread(s.Unary, pb2.Msg(text="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "APIG.0308" in info.value.details()
    metrics = gw.gw.services.extras["metrics"].render().decode()
    assert _grpc_calls(metrics, "g1", "RESOURCE_EXHAUSTED") == 1.0
    assert _grpc_calls(metrics, "g1", "OK") == 2.0


def _grpc_calls(metrics: str, api: str, code: str) -> float | None:
    """The value of apig_grpc_calls_total for one API and status (whatever other labels it carries)."""
    for line in metrics.splitlines():
        if line.startswith("apig_grpc_calls_total{") and f'api="{api}"' in line and f'code="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_server_streaming_10000_messages(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=60000)))

    def run() -> list[int]:
        return [m.n for m in stub(ch).ServerStream(pb2.Count(n=10000, size=100), timeout=60)]

    got = await asyncio.to_thread(run)
    assert got == list(range(10000))


async def test_server_streaming_back_pressure(grpc_gw, backend) -> None:
    """A caller that stops reading stalls the backend: the gateway relays under flow control, never buffering
    the 300 MB the backend would like to send."""
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=60000)))
    reading = threading.Event()

    def run() -> int:
        it = stub(ch).ServerStream(pb2.Count(n=300, size=1_000_000), timeout=60)
        first = next(it)
        reading.wait(30)  # the caller pauses
        return first.n + sum(1 for _ in it) + 1

    fut = asyncio.ensure_future(asyncio.to_thread(run))
    await asyncio.sleep(0)
    assert await wait_sync(lambda: backend.service.yielded >= 1)
    stalled_at = await _settle(lambda: backend.service.yielded)
    assert stalled_at < 60, stalled_at  # a few windows' worth (MB), not the whole stream
    reading.set()
    assert await fut == 300  # and the call completes once the caller reads again
    assert backend.service.yielded == 300


async def wait_sync(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def _settle(value: Callable[[], int], quiet: float = 1.0, timeout: float = 20.0) -> int:
    """The value once it stopped changing for ``quiet`` seconds."""
    end = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < end:
        await asyncio.sleep(0.1)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


async def test_client_streaming(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=60000)))
    msgs = [pb2.Msg(text="m", n=i, blob=b"z" * 1000) for i in range(2000)]  # ~2 MB upstream
    reply = await asyncio.to_thread(stub(ch).ClientStream, iter(msgs), timeout=60)
    assert reply.text == "got:2000" and reply.n == sum(range(2000)) + 2000 * 1000


async def test_bidi_echo(grpc_gw, backend) -> None:
    _gw, ch = await grpc_gw(snapshot(_all_methods(backend.addr, timeout=60000)))

    def run() -> list[str]:
        out = []
        for reply in stub(ch).Bidi(iter(pb2.Msg(text=f"t{i}", n=i) for i in range(500)), timeout=60):
            out.append(reply.text)
        return out

    got = await asyncio.to_thread(run)
    assert got == [f"re:t{i}" for i in range(500)]
