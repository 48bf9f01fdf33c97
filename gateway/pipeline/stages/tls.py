"""The ``tls`` request stage and the TLS checks of the snapshot.

Role in the pipeline:

* Config-load time: :func:`check` validates the certificate material of ``groups[].url_domains[]`` and of
  the ``backend_client_certificate`` feature (a bad PEM rejects the snapshot with ``path: reason``);
  :func:`listener_domains` compiles the per-domain table the HTTPS listener's SNI callback reads
  (``Runtime.tls_domains``; contexts cached by content, see :mod:`gateway.lib.tls`).
* Request stage ``tls`` (right after ``client_ip``, before the IP ACL): ``req_protocol`` HTTP/HTTPS/BOTH per
  API (APIG.0607 400), a domain's ``min_ssl_version`` (APIG.0204 400) and client-certificate verification
  (``verified_client_certificate_enabled`` + ``trusted_root_ca``: APIG.0205 400 without a verified
  certificate). Built only for APIs that need it, so a BOTH API on a plain group pays nothing.

Backend (client) TLS lives in :mod:`gateway.backends.tls`, the listener in :mod:`gateway.process.https`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.core.errors import client_cert_failed, protocol_not_supported, ssl_version_not_supported
from gateway.lib.tls import alpn_protocols, ca_problem, pem_problem, server_context
from gateway.model.tls import DomainTls, lookup
from gateway.snapshot.features import feature_config, feature_record
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from gateway.core.settings import Settings
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft

_VERSION_RANK = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}


# --- validation -----------------------------------------------------------------------------------

def check(index: Index, problems: list[str]) -> None:
    for i, group in enumerate(index.items("groups")):
        for j, dom in enumerate(group.get("url_domains") or []):
            if not isinstance(dom, dict):
                continue
            path = f"groups[{i}].url_domains[{j}]"
            cert, key, ca = dom.get("certificate"), dom.get("private_key"), dom.get("trusted_root_ca")
            if (cert is None) != (key is None):
                problems.append(f"{path}: certificate and private_key must be given together")
            elif cert is not None:
                reason = pem_problem(cert, key)
                if reason:
                    problems.append(f"{path}.{reason}")
                else:
                    try:
                        server_context(str(cert), str(key), None)
                    except (ssl.SSLError, OSError) as exc:
                        problems.append(f"{path}.certificate: cannot be used: {exc.__class__.__name__}")
            if ca is not None:
                reason = ca_problem(ca)
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
            reason = pem_problem(content, key)
            if reason:
                problems.append(f"{path}.{reason.replace('certificate:', 'content:').replace('private_key:', 'key:')}")
        if ca:
            reason = ca_problem(ca)
            if reason:
                problems.append(f"{path}.ca: {reason}")


# --- the domain table of the HTTPS listener (compiled into Runtime.tls_domains) -------------------------

def domain_table(index: Index, settings: Settings) -> dict[str, DomainTls]:
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


def listener_domains(build: BuildContext) -> Mapping[str, DomainTls]:
    """The SNI table for ``Runtime.tls_domains`` (empty unless this process serves HTTPS)."""
    if not build.settings.https_listen:
        return {}
    return domain_table(build.index, build.settings)


# --- request stage: req_protocol, min_ssl_version, client certificates ----------------------------

def _tls_stage(allow_http: bool, allow_https: bool, supported: str, domains: dict[str, DomainTls]) -> Stage:
    async def stage(ctx: RequestContext) -> None:
        secure = ctx.request.secure
        if (secure and not allow_https) or (not secure and not allow_http):
            raise protocol_not_supported(supported)
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
            raise ssl_version_not_supported(version)
        # verified against the trusted_root_ca of the SNI domain, which must be the Host's domain
        if d.verify_client and (not sslobj.getpeercert() or getattr(sslobj, "apig_sni", None) != ctx.host):
            raise client_cert_failed()

    return stage


def build_tls_stage(draft: EndpointDraft, build: BuildContext) -> Stage | None:
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
