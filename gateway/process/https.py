"""The HTTPS listener: the same public pipeline over TLS, a certificate per domain through SNI.

Role: process wiring. :func:`start_https` (called from ``Gateway.start`` when ``Settings.https_listen`` is
set) serves the public runner over TLS. The default certificate is ``tls_cert_file``/``tls_key_file``; the
SNI callback switches to the certificate bound to the requested domain (``url_domains[].certificate`` /
``private_key``), read from the compiled ``Runtime.tls_domains``, which follows snapshot swaps.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.core.settings import Settings, split_listen
from gateway.lib.sites import ProtocolSite
from gateway.lib.tls import TLS_VERSIONS, alpn_protocols
from gateway.model.runtime import Runtime
from gateway.model.services import Services
from gateway.model.tls import DomainTls, lookup


class HttpsListener:
    """The base context plus the per-snapshot domain table the SNI callback reads."""

    def __init__(self, s: Settings, runtime: Runtime | None) -> None:
        if not s.tls_cert_file:
            raise SystemExit("https_listen needs tls_cert_file (and tls_key_file): the default certificate")
        self.settings = s
        self.base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.base.minimum_version = TLS_VERSIONS.get(s.tls_min_version, ssl.TLSVersion.TLSv1_2)
        if s.tls_ciphers:
            self.base.set_ciphers(s.tls_ciphers)
        self.base.load_cert_chain(s.tls_cert_file, s.tls_key_file or None)
        self.base.set_alpn_protocols(list(alpn_protocols(s)))
        self.base.sni_callback = self._sni
        self.table: Mapping[str, DomainTls] = {}
        if runtime is not None:
            self.swap(runtime)

    def swap(self, rt: Runtime) -> None:
        table = rt.tls_domains
        self.table = table
        # OpenSSL decides whether to ask for a client certificate before SNI switches contexts, so the
        # request is listener-wide while any domain verifies clients (docs/tls.md).
        need = any(d.verify_client for d in table.values())
        self.base.verify_mode = ssl.CERT_OPTIONAL if need else ssl.CERT_NONE

    def _sni(self, sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        if server_name:
            d = lookup(self.table, server_name)
            try:
                sslobj.apig_sni = server_name.lower()
            except AttributeError:
                pass
            if d is not None and d.context is not None:
                sslobj.context = d.context
        return None


async def start_https(s: Settings, services: Services, runner: web.BaseRunner, reuse_port: bool = False,
                      factory: Callable[[], asyncio.BaseProtocol] | None = None) -> int | None:
    """Start the HTTPS site on ``settings.https_listen`` sharing the public runner; returns the bound port.
    ``factory`` makes each connection's protocol (the ALPN dispatcher when HTTP/2 is on)."""
    listener = HttpsListener(s, services.runtime)
    services.extras["tls.listener"] = listener
    services.swap_hooks.append(listener.swap)
    host, port = split_listen(str(s.https_listen))
    site: web.TCPSite
    if factory is not None:
        site = ProtocolSite(runner, factory, host, port, ssl_context=listener.base, backlog=s.backlog,
                            reuse_port=reuse_port or None)
    else:
        site = web.TCPSite(runner, host, port, ssl_context=listener.base, backlog=s.backlog,
                           reuse_port=reuse_port or None)
    await site.start()
    server = getattr(site, "_server", None)
    if server is None or not server.sockets:
        return None
    return int(server.sockets[0].getsockname()[1])
