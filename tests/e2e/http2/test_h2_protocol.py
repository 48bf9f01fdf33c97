"""HTTP/2 protocol duties and defences of the public listener, driven frame by frame with the h2 library."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h2.errors
import h2.events
import h2.settings
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame

from tests.support.h2_helpers import tls_files
from tests.support.h2_raw import RawH2
from tests.support.helpers import http_api, mock_api, snapshot
from tests.support.tls_helpers import TestCA

S = h2.settings.SettingCodes
CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
async def start(make_gateway, echo_backend, ca, tmp_path) -> Any:
    backend, addr = echo_backend
    cert, key = tls_files(ca, str(tmp_path))

    async def go(**overrides: Any) -> Any:
        apis = [mock_api("m1", "/mock", "x" * 20_000), http_api("h1", "/echo", addr, method="ANY"),
                http_api("h2", "/big/{n}", addr, backend_uri="/big/{n}")]
        overrides.setdefault("https_listen", "127.0.0.1:0")
        gw = await make_gateway(snapshot(apis), tls_cert_file=cert, tls_key_file=key, **overrides)
        return gw.gw, backend

    return go


async def _open(gw: Any, ca: TestCA, **kw: Any) -> RawH2:
    c = await RawH2.connect(gw.https_port, ca, **kw)
    assert await c.until(lambda c: bool(c.of(h2.events.RemoteSettingsChanged)))
    return c


async def test_settings_advertised_and_concurrent_streams_enforced(start, ca) -> None:
    gw, backend = await start(h2_max_concurrent_streams=3)
    c = await _open(gw, ca)
    changed = c.of(h2.events.RemoteSettingsChanged)[0].changed_settings
    assert changed[S.MAX_CONCURRENT_STREAMS].new_value == 3
    assert changed[S.MAX_HEADER_LIST_SIZE].new_value == 64 * 1024
    backend.delay = 1.0
    # a client ignoring the limit: the streams beyond it are refused, the others are served
    c.conn.remote_settings = h2.settings.Settings(client=False, initial_values={S.MAX_CONCURRENT_STREAMS: 1000})
    sids = [c.request("/echo") for _ in range(5)]
    done = await c.until(lambda c: all(c.ended(s) or c.of(h2.events.StreamReset, s) for s in sids))
    assert done, (c.events, c.closed)
    refused = [s for s in sids if c.of(h2.events.StreamReset, s)]
    assert len(refused) == 2
    assert all(c.of(h2.events.StreamReset, s)[0].error_code == h2.errors.ErrorCodes.REFUSED_STREAM for s in refused)
    assert [c.status(s) for s in sids if s not in refused] == [200, 200, 200]
    c.close()


async def test_rapid_reset_costs_the_connection(start, ca) -> None:
    gw, backend = await start(h2_max_resets=50)
    backend.delay = 5.0
    c = await _open(gw, ca)
    for _ in range(200):  # CVE-2023-44487: open and cancel at once, over and over
        sid = c.request("/echo")
        c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    assert await c.until(lambda c: c.closed)
    assert c.goaway() is not None and c.goaway().error_code == CALM
    assert gw.h2server.flood_closes == 1
    assert await wait_sync(lambda: not gw.h2server.connections)  # nothing of it stays behind
    ok = await _open(gw, ca)  # the listener still serves everyone else
    sid = ok.request("/mock")
    assert await ok.until(lambda c: c.ended(sid)) and ok.status(sid) == 200
    ok.close()


async def test_refused_stream_flood_costs_the_connection(start, ca) -> None:
    gw, backend = await start(h2_max_concurrent_streams=2, h2_max_resets=20)
    backend.delay = 5.0
    c = await _open(gw, ca)
    c.conn.remote_settings = h2.settings.Settings(client=False, initial_values={S.MAX_CONCURRENT_STREAMS: 1000})
    for _ in range(60):  # beyond the advertised limit, over and over: each one refused, then the connection
        c.request("/echo")
    assert await c.until(lambda c: c.closed)
    assert c.goaway() is not None and c.goaway().error_code == CALM


async def test_continuation_flood_closes_the_connection(start, ca) -> None:
    gw, _ = await start()
    c = await _open(gw, ca)
    head = HeadersFrame(1)
    head.data = b"\x82\x87"  # :method GET, :scheme https (HPACK static table); END_HEADERS never comes
    frames = [head.serialize()]
    for _ in range(2000):
        cont = ContinuationFrame(1)
        cont.data = b"\x00" * 1024
        frames.append(cont.serialize())
    try:
        c.write_raw(b"".join(frames))
        await c.writer.drain()
    except ConnectionError:
        pass
    assert await c.until(lambda c: c.closed)
    assert await wait_sync(lambda: not gw.h2server.connections)


@pytest.mark.parametrize("kind", ["ping", "settings"])
async def test_control_frame_floods_close_the_connection(start, ca, kind: str) -> None:
    gw, _ = await start(h2_max_control_frames=100)
    c = await _open(gw, ca)
    for i in range(300):
        if kind == "ping":
            c.conn.ping(i.to_bytes(8, "big"))
        else:
            c.conn.update_settings({S.ENABLE_PUSH: 0})
    try:
        c.flush()
        await c.writer.drain()
    except ConnectionError:
        pass
    assert await c.until(lambda c: c.closed)
    assert c.goaway() is not None and c.goaway().error_code == CALM


async def test_zero_window_stall_is_bounded(start, ca) -> None:
    gw, _ = await start(h2_stall_timeout_s=0.5)
    c = await _open(gw, ca, settings={S.INITIAL_WINDOW_SIZE: 0})
    sid = c.request("/mock")  # 20 kB that can never be sent
    t0 = time.monotonic()
    assert await c.until(lambda c: c.closed)
    assert c.status(sid) == 200 and not c.bodies.get(sid)
    assert 0.4 < time.monotonic() - t0 < 10
    assert c.goaway() is not None and c.goaway().error_code == CALM


async def test_flow_control_is_respected_and_resumes(start, ca) -> None:
    gw, _ = await start()
    c = await _open(gw, ca, settings={S.INITIAL_WINDOW_SIZE: 16384}, auto_ack=False)
    sid = c.request("/big/3000000")
    assert await c.until(lambda c: len(c.bodies.get(sid, b"")) >= 16384)
    await asyncio.sleep(0.3)  # the gateway must not send past the window however long we wait
    assert await c.until(lambda c: False, timeout=0.3) is False
    assert len(c.bodies[sid]) == 16384
    c.auto_ack = True
    c.conn.acknowledge_received_data(16384, sid)
    c.conn.increment_flow_control_window(4_000_000)
    c.flush()
    assert await c.until(lambda c: c.ended(sid))
    assert len(c.bodies[sid]) == 3_000_000


async def test_upload_back_pressure_from_a_backend_that_does_not_read(make_gateway, ca, tmp_path) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def deaf(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # never reads: its socket buffers fill, then the gateway's, then the client's window

    server = await asyncio.start_server(deaf, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cert, key = tls_files(ca, str(tmp_path))
    gw = await make_gateway(snapshot([http_api("h1", "/up", f"127.0.0.1:{port}", method="POST", timeout=30000)]),
                            https_listen="127.0.0.1:0", tls_cert_file=cert, tls_key_file=key,
                            max_body_bytes=200_000_000)
    c = await _open(gw.gw, ca)
    total = 100_000_000
    sid = c.request("/up", method="POST", end=False, headers=[("content-length", str(total))])
    sent = 0
    chunk = b"u" * 16384
    stalled_since = time.monotonic()
    while sent < total and time.monotonic() - stalled_since < 1.5:
        window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
        if window > 0:
            c.conn.send_data(sid, chunk[:window])
            sent += window
            c.flush()
            await c.writer.drain()
            stalled_since = time.monotonic()
        else:
            await c.until(lambda c: c.conn.local_flow_control_window(sid) > 0, timeout=0.2)
    assert accepted  # the gateway did connect and is writing to the backend
    assert sent < 40_000_000, sent  # socket buffers and one window, not the 100 MB body
    c.close()
    for w in accepted:
        w.close()
    server.close()


async def test_header_limits(start, ca) -> None:
    gw, _ = await start(h2_max_header_list_bytes=8192, max_headers=20)
    c = await _open(gw, ca)
    many = [(f"x-h{i}", "v") for i in range(30)]
    sid = c.request("/mock", headers=many)
    assert await c.until(lambda c: c.ended(sid)) and c.status(sid) == 431
    sid = c.request("/mock")  # the connection stays up
    assert await c.until(lambda c: c.ended(sid)) and c.status(sid) == 200
    c.request("/mock", headers=[("x-big", "y" * 20000)])  # decoded header list beyond the setting
    assert await c.until(lambda c: c.closed)
    assert c.goaway() is not None and c.goaway().error_code == CALM


async def test_single_stream_reset_leaves_the_connection_up(start, ca) -> None:
    gw, _ = await start()
    c = await _open(gw, ca)
    big = c.request("/big/50000000")
    assert await c.until(lambda c: len(c.bodies.get(big, b"")) > 100_000)
    c.conn.reset_stream(big, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    sid = c.request("/echo", method="POST", body=b"after reset")
    assert await c.until(lambda c: c.ended(sid))
    assert c.status(sid) == 200 and b"after reset" in c.bodies[sid]
    assert not c.closed


async def test_header_read_and_idle_timeouts(start, ca) -> None:
    gw, _ = await start(header_read_timeout_s=0.5, keepalive_timeout_s=1.0)
    silent = await _open(gw, ca)
    t0 = time.monotonic()
    assert await silent.until(lambda c: c.closed)  # no request head in time
    assert time.monotonic() - t0 < 8
    c = await _open(gw, ca)
    sid = c.request("/mock")
    assert await c.until(lambda c: c.ended(sid))
    t0 = time.monotonic()
    assert await c.until(lambda c: c.closed)  # idle after its last stream
    assert 0.5 < time.monotonic() - t0 < 10
    assert c.goaway() is not None and c.goaway().error_code == h2.errors.ErrorCodes.NO_ERROR


async def test_graceful_shutdown_finishes_streams_in_flight(start, ca) -> None:
    gw, backend = await start()
    backend.delay = 1.0
    c = await _open(gw, ca)
    sid = c.request("/echo", method="POST", body=b"in flight")
    assert await wait_sync(lambda: backend.hits == 1)
    stopping = asyncio.ensure_future(gw.stop())
    assert await c.until(lambda c: c.goaway() is not None)
    assert c.goaway().error_code == h2.errors.ErrorCodes.NO_ERROR and c.goaway().last_stream_id == sid
    assert await c.until(lambda c: c.ended(sid))
    assert c.status(sid) == 200 and b"in flight" in c.bodies[sid]
    assert await c.until(lambda c: c.closed)
    await stopping


async def test_prior_knowledge_h2c_on_the_plain_listener(start, ca) -> None:
    gw, _ = await start(h2c=True)
    c = await RawH2.connect(gw.public_port)
    sid = c.request("/mock")
    assert await c.until(lambda c: c.ended(sid)) and c.status(sid) == 200
    assert len(c.bodies[sid]) == 20_000
    c.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.public_port)  # HTTP/1.1 still works
    writer.write(b"GET /mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()


async def wait_sync(cond: Any, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True
