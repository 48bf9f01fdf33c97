"""gRPC test parts: the echo service compiled from tests/support/protos/echo.proto with grpcio-tools at test
time, a real grpcio server (TLS with a test CA, or plaintext h2c) and snapshot builders for gRPC APIs."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from tests.support.tls_helpers import TestCA

PROTO_DIR = Path(__file__).resolve().parent / "protos"
_compiled: tuple[ModuleType, ModuleType] | None = None
_lock = threading.Lock()


def echo_modules() -> tuple[ModuleType, ModuleType]:
    """(echo_pb2, echo_pb2_grpc), generated once per test process into a temporary directory."""
    global _compiled
    with _lock:
        if _compiled is None:
            from grpc_tools import protoc

            out = tempfile.mkdtemp(prefix="gw-grpc-")
            rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}",
                              str(PROTO_DIR / "echo.proto")])
            assert rc == 0, "protoc failed"
            sys.path.insert(0, out)
            _compiled = (importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc"))
    return _compiled


class EchoService:
    """The servicer: records calls and the metadata it saw."""

    def __init__(self) -> None:
        self.pb2, self.pb2_grpc = echo_modules()
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.cancelled = threading.Event()
        self.yielded = 0  # ServerStream messages handed to grpcio so far

    def _seen(self, name: str, context: Any) -> None:
        self.calls.append((name, {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}))

    def Unary(self, request: Any, context: Any) -> Any:
        self._seen("Unary", context)
        if request.delay_ms:
            end = time.monotonic() + request.delay_ms / 1000.0
            while time.monotonic() < end:
                if not context.is_active():
                    self.cancelled.set()
                    break
                time.sleep(0.01)
        if request.fail_code:
            context.abort(grpc.StatusCode(_status_tuple(request.fail_code)), f"failed as asked: {request.text}")
        remaining = context.time_remaining()  # from the grpc-timeout the gateway sent
        context.set_trailing_metadata((("x-trailer", "t-" + request.text),))
        left = str(int(remaining * 1000)) if remaining is not None else "none"
        return self.pb2.Msg(text=f"echo:{request.text}", n=request.n + 1, blob=left.encode())

    def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:
        self._seen("ServerStream", context)
        blob = b"b" * request.size
        for i in range(request.n):
            self.yielded += 1
            yield self.pb2.Msg(text="m", n=i, blob=blob)

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:
        self._seen("ClientStream", context)
        count = total = 0
        for msg in request_iterator:
            count += 1
            total += msg.n + len(msg.blob)
        return self.pb2.Msg(text=f"got:{count}", n=total)

    def Bidi(self, request_iterator: Any, context: Any) -> Iterator[Any]:
        self._seen("Bidi", context)
        for msg in request_iterator:
            yield self.pb2.Msg(text=f"re:{msg.text}", n=msg.n)


def _status_tuple(code: int) -> tuple[int, str]:
    for sc in grpc.StatusCode:
        if sc.value[0] == code:
            return sc.value
    raise ValueError(code)


def status_of(code: int) -> grpc.StatusCode:
    return grpc.StatusCode(_status_tuple(code))


class GrpcBackend:
    """A real grpcio server on 127.0.0.1 (TLS with ``ca``'s certificate, or plaintext)."""

    def __init__(self, ca: TestCA | None, max_streams: int | None = None) -> None:
        self.service = EchoService()
        options = [("grpc.max_concurrent_streams", max_streams)] if max_streams else []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=options)
        self.service.pb2_grpc.add_EchoServicer_to_server(self.service, self.server)
        if ca is not None:
            issued = ca.issue("grpc-backend", dns=["localhost"], ips=["127.0.0.1"])
            creds = grpc.ssl_server_credentials([(issued.key_pem.encode(), issued.cert_pem.encode())])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None)


def grpc_api(api_id: str, method_path: str, backend: str, *, tls: bool = True, timeout: int = 5000,
             match_mode: str = "NORMAL", **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {
        "id": api_id, "group_id": "g1", "name": f"api_{api_id}".replace("-", "_"), "type": 1,
        "req_protocol": "GRPCS", "req_method": "POST", "req_uri": method_path, "match_mode": match_mode,
        "auth_type": "NONE", "backend_type": "GRPC",
        "backend_api": {"url_domain": backend, "req_protocol": "GRPCS" if tls else "HTTP", "req_method": "POST",
                        "req_uri": "/", "timeout": timeout, "retry_count": "0"},
    }
    api.update(extra)
    return api


def gateway_channel(ca: TestCA, port: int) -> grpc.Channel:
    """A real gRPC client channel to the gateway's HTTPS listener, trusting the test CA."""
    creds = grpc.ssl_channel_credentials(root_certificates=ca.pem.encode())
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[
        ("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.enable_retries", 0)])


def stub(channel: grpc.Channel) -> Any:
    return echo_modules()[1].EchoStub(channel)


os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
