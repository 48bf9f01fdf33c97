"""TLS both ways: HTTPS backends (verification, client certificates), the HTTPS listener, ``req_protocol``.

Role in the pipeline:

* Config-load time: validates the certificate material of ``groups[].url_domains[]`` and of the
  ``backend_client_certificate`` feature (a bad PEM rejects the snapshot with ``path: reason``), and builds
  the ``ssl.SSLContext`` objects once (cached by content, so a swap that keeps a certificate reuses it).
* Backend side (step 17): ``runtime.UPSTREAM_BUILDERS["ssl"]`` returns the client context an HTTPS backend
  is reached with — certificate and host-name verification on by default (``Settings.backend_ca_file`` or
  the system store; ``backend_ssl_verify=false`` turns it off), plus a client certificate when the backend
  has ``enable_client_ssl`` (feature ``backend_client_certificate`` or ``Settings.backend_client_cert_file``
  / ``backend_client_key_file``). Contexts are cached per distinct material, so pooled connections are
  shared. An untrusted backend certificate is a connection failure: BACKEND_UNAVAILABLE 502.
* Listener side: :func:`start_https` (called from ``Gateway.start`` when ``Settings.https_listen`` is set)
  serves the same pipeline over TLS. The default certificate is ``tls_cert_file``/``tls_key_file``; the SNI
  callback switches to the certificate bound to the requested domain (``url_domains[].certificate`` /
  ``private_key``). The domain table follows snapshot swaps.
* Request stage ``tls`` (order 5, before the IP ACL): ``req_protocol`` HTTP/HTTPS/BOTH per API
  (APIG.0607 400), a domain's ``min_ssl_version`` (APIG.0204 400) and client-certificate verification
  (``verified_client_certificate_enabled`` + ``trusted_root_ca``: APIG.0205 400 without a verified
  certificate). Built only for APIs that need it, so a BOTH API on a plain group pays nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core.errors import GatewayError
from gateway.core.settings import split_listen
from gateway.model import runtime
from gateway.pipeline import spec as stages
from gateway.snapshot.features import feature_config, feature_record
from gateway.snapshot.validate import EXTRA_CHECKS, Index

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.model.context import RequestContext
    from gateway.model.runtime import BuildContext, EndpointDraft, Runtime
    from gateway.pipeline.spec import Stage
    from gateway.process.server import Gateway

log = logging.getLogger("gateway.pipeline.stages.tls")

ORDER_TLS = 5
TLS_VERSIONS = {"TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_VERSION_RANK = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}


# --- PEM helpers ----------------------------------------------------------------------------------

def _pem_problem(cert_pem: Any, key_pem: Any) -> str | None:
    """None when ``cert_pem`` (a chain) and ``key_pem`` parse and belong together, else a reason."""
    if not isinstance(cert_pem, str) or not isinstance(key_pem, str):
        return "certificate and private_key must both be PEM text"
    try:
        certs = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        return "certificate: is not a PEM certificate chain"
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return "private_key: is not an unencrypted PEM private key"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certs[0].public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        return "private_key: does not match the certificate"
    return None


def _ca_problem(ca_pem: Any) -> str | None:
    if not isinstance(ca_pem, str):
        return "must be PEM text"
    try:
        x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError:
        return "is not a PEM certificate bundle"
    return None


def _load_chain(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """``load_cert_chain`` only reads files: write a private (0600) temporary file and remove it at once."""
    fd, name = tempfile.mkstemp(prefix="gw-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key_pem.strip() + "\n" + cert_pem.strip() + "\n")
        ctx.load_cert_chain(name)
    finally:
        os.unlink(name)


_CONTEXTS: dict[str, ssl.SSLContext] = {}


def _cached(key_parts: tuple[Any, ...], build: Any) -> ssl.SSLContext:
    key = hashlib.sha256(repr(key_parts).encode()).hexdigest()
    found = _CONTEXTS.get(key)
    if found is None:
        found = build()
        _CONTEXTS[key] = found
        while len(_CONTEXTS) > 512:
            del _CONTEXTS[next(iter(_CONTEXTS))]
    return found


def server_context(cert_pem: str, key_pem: str, ca_pem: str | None = None, min_version: str = "TLSv1.2",
                   ciphers: str | None = None, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """A listener context for one certificate (optionally trusting ``ca_pem`` for client certificates)."""

    def build() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS.get(min_version, ssl.TLSVersion.TLSv1_2)
        if ciphers:
            ctx.set_ciphers(ciphers)
        _load_chain(ctx, cert_pem, key_pem)
        if ca_pem:
            ctx.load_verify_locations(cadata=ca_pem)
            ctx.verify_mode = ssl.CERT_OPTIONAL  # presence is enforced per request (APIG.0205)
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    return _cached(("server", cert_pem, key_pem, ca_pem, min_version, ciphers, alpn), build)


# --- validation -----------------------------------------------------------------------------------

def _check(index: Index, problems: list[str]) -> None:
    for i, group in enumerate(index.items("groups")):
        for j, dom in enumerate(group.get("url_domains") or []):
            if not isinstance(dom, dict):
                continue
            path = f"groups[{i}].url_domains[{j}]"
            cert, key, ca = dom.get("certificate"), dom.get("private_key"), dom.get("trusted_root_ca")
            if (cert is None) != (key is None):
                problems.append(f"{path}: certificate and private_key must be given together")
            elif cert is not None:
                reason = _pem_problem(cert, key)
                if reason:
                    problems.append(f"{path}.{reason}")
                else:
                    try:
                        server_context(str(cert), str(key), None)
                    except (ssl.SSLError, OSError) as exc:
                        problems.append(f"{path}.certificate: cannot be used: {exc.__class__.__name__}")
            if ca is not None:
                reason = _ca_problem(ca)
                if reason:
                    problems.append(f"{path}.trusted_root_ca: {reason}")
            if dom.get("verified_client_certificate_enabled") and not ca:
                problems.append(f"{path}.verified_client_certificate_enabled: needs trusted_root_ca")
            if (dom.get("verified_client_certificate_enabled") or ca) and cert is None:
                problems.append(f"{path}.trusted_root_ca: client-certificate verification needs a bound certificate")
    cfg = feature_config(index, "backend_client_certificate")
    found = feature_record(index, "backend_client_certificate")
    if cfg is not None and found is not None:
        path = f"features[{found[0]}].config"
        content, key, ca = cfg.get("content"), cfg.get("key"), cfg.get("ca")
        if content is not None or key is not None:
            reason = _pem_problem(content, key)
            if reason:
                problems.append(f"{path}.{reason.replace('certificate:', 'content:').replace('private_key:', 'key:')}")
        if ca:
            reason = _ca_problem(ca)
            if reason:
                problems.append(f"{path}.ca: {reason}")


EXTRA_CHECKS.append(_check)


# --- backend (client) side ------------------------------------------------------------------------

def client_context(verify: bool, ca_file: str | None, ca_pem: str | None, cert: tuple[str, str] | None,
                   cert_files: tuple[str, str] | None) -> ssl.SSLContext:
    def build() -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=ca_file) if (ca_file or not ca_pem) else ssl.create_default_context()
        if ca_pem:
            ctx.load_verify_locations(cadata=ca_pem)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            _load_chain(ctx, cert[0], cert[1])
        elif cert_files is not None:
            ctx.load_cert_chain(cert_files[0], cert_files[1] or None)
        return ctx

    return _cached(("client", verify, ca_file, ca_pem, cert, cert_files), build)


def _backend_ssl(backend: dict[str, Any], draft: EndpointDraft, build: BuildContext, path: str,
                 scheme: str) -> ssl.SSLContext | None:
    s = build.settings
    verify = bool(getattr(s, "backend_ssl_verify", True))
    ca_pem: str | None = None
    cert: tuple[str, str] | None = None
    files: tuple[str, str] | None = None
    if backend.get("enable_client_ssl"):
        feat = feature_config(build.index, "backend_client_certificate")
        if feat is not None and feat.get("content") and feat.get("key"):
            cert = (str(feat["content"]), str(feat["key"]))
            ca_pem = str(feat["ca"]) if feat.get("ca") else None
        elif getattr(s, "backend_client_cert_file", None):
            files = (str(s.backend_client_cert_file), str(getattr(s, "backend_client_key_file", "") or ""))
        else:
            build.problems.append(f"{path}.enable_client_ssl: no client certificate configured (feature "
                                  "backend_client_certificate or setting backend_client_cert_file)")
            return None
    try:
        return client_context(verify, s.backend_ca_file, ca_pem, cert, files)
    except (ssl.SSLError, OSError) as exc:
        build.problems.append(f"{path}: backend TLS settings cannot be used: {exc.__class__.__name__}: {exc}")
        return None


runtime.UPSTREAM_BUILDERS["ssl"] = _backend_ssl


# --- listener side --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DomainTls:
    context: ssl.SSLContext | None
    min_version: str
    verify_client: bool


def domain_table(index: Index, settings: Any) -> dict[str, DomainTls]:
    """Lower-case domain (``*.example.com`` allowed) -> its TLS settings, from every group."""
    table: dict[str, DomainTls] = {}
    ciphers = getattr(settings, "tls_ciphers", None)
    base_min = str(getattr(settings, "tls_min_version", "TLSv1.2"))
    alpn = alpn_protocols(settings)
    for group in index.items("groups"):
        for dom in group.get("url_domains") or []:
            if not isinstance(dom, dict) or not dom.get("domain"):
                continue
            ctx = None
            verify = bool(dom.get("verified_client_certificate_enabled")) and bool(dom.get("trusted_root_ca"))
            if dom.get("certificate") and dom.get("private_key"):
                ctx = server_context(dom["certificate"], dom["private_key"],
                                     dom.get("trusted_root_ca") if verify else None, base_min, ciphers, alpn)
            table[str(dom["domain"]).lower()] = DomainTls(ctx, str(dom.get("min_ssl_version") or "TLSv1.1"), verify)
    return table


def lookup(table: dict[str, DomainTls], host: str) -> DomainTls | None:
    host = host.lower().rstrip(".")
    found = table.get(host)
    if found is None and "." in host:
        found = table.get("*." + host.split(".", 1)[1])
    return found


def alpn_protocols(settings: Any) -> tuple[str, ...]:
    """What the HTTPS listener offers by ALPN: ``h2`` first when HTTP/2 is on (docs/http2-grpc.md)."""
    return ("h2", "http/1.1") if getattr(settings, "http2", False) else ("http/1.1",)


class HttpsListener:
    """The base context plus the per-snapshot domain table the SNI callback reads."""

    def __init__(self, gateway: Gateway) -> None:
        s = gateway.settings
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
        self.table: dict[str, DomainTls] = {}
        if gateway.runtime is not None:
            self.swap(gateway.runtime)

    def swap(self, rt: Runtime) -> None:
        table = domain_table(rt.index, self.settings)
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


async def start_https(gateway: Gateway, runner: web.BaseRunner, reuse_port: bool = False,
                      factory: Callable[[], asyncio.BaseProtocol] | None = None) -> int | None:
    """Start the HTTPS site on ``settings.https_listen`` sharing the public runner; returns the bound port.
    ``factory`` makes each connection's protocol (the ALPN dispatcher when HTTP/2 is on)."""
    from aiohttp import web

    from gateway.lib.sites import ProtocolSite

    s = gateway.settings
    listener = HttpsListener(gateway)
    gateway.services.extras["tls.listener"] = listener
    gateway.services.swap_hooks.append(listener.swap)
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


# --- request stage: req_protocol, min_ssl_version, client certificates ----------------------------

def _protocol_error(supported: str) -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0607", f"The following protocol is supported: {supported}", status=400)


def _client_cert_failed() -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0205", "Verify client certificate failed", status=400)


def _tls_stage(allow_http: bool, allow_https: bool, supported: str, domains: dict[str, DomainTls]) -> Stage:
    async def stage(ctx: RequestContext) -> None:
        secure = ctx.request.secure
        if (secure and not allow_https) or (not secure and not allow_http):
            raise _protocol_error(supported)
        if not secure or not domains:
            return
        d = lookup(domains, ctx.host)
        if d is None:
            return
        transport = ctx.request.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        if sslobj is None:
            return
        version = sslobj.version() or ""
        if _VERSION_RANK.get(version, 3) < _VERSION_RANK.get(d.min_version, 1):
            raise GatewayError("DEFAULT_4XX", "APIG.0204", f"SSL protocol is not supported: {version}", status=400)
        # verified against the trusted_root_ca of the SNI domain, which must be the Host's domain
        if d.verify_client and (not sslobj.getpeercert() or getattr(sslobj, "apig_sni", None) != ctx.host):
            raise _client_cert_failed()

    return stage


@stages.register_stage(ORDER_TLS, "tls")
def _build_tls_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    proto = str(draft.api.get("req_protocol") or "BOTH")
    allow_http = proto in ("HTTP", "BOTH")
    allow_https = proto in ("HTTPS", "BOTH", "GRPCS")
    supported = {"HTTP": "HTTP", "HTTPS": "HTTPS", "GRPCS": "HTTPS"}.get(proto, "HTTP,HTTPS")
    domains: dict[str, DomainTls] = {}
    for dom in draft.group.get("url_domains") or []:
        if not isinstance(dom, dict) or not dom.get("domain"):
            continue
        verify = bool(dom.get("verified_client_certificate_enabled")) and bool(dom.get("trusted_root_ca"))
        min_version = str(dom.get("min_ssl_version") or "TLSv1.1")
        if verify or min_version != "TLSv1.1":
            domains[str(dom["domain"]).lower()] = DomainTls(None, min_version, verify)
    if allow_http and allow_https and not domains:
        return None
    return _tls_stage(allow_http, allow_https, supported, domains)
