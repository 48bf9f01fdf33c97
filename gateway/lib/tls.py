"""TLS building blocks: PEM checks and ``ssl.SSLContext`` construction, cached by content.

Role: a pure helper (no gateway state). Used at config-load time by the ``tls`` stage's check, the backend
client contexts (:mod:`gateway.backends.tls`) and the HTTPS listener (:mod:`gateway.process.https`). Contexts
are cached per distinct material, so a swap that keeps a certificate reuses its context (and pooled
connections stay shared).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TLS_VERSIONS = {"TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def pem_problem(cert_pem: Any, key_pem: Any) -> str | None:
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


def ca_problem(ca_pem: Any) -> str | None:
    if not isinstance(ca_pem, str):
        return "must be PEM text"
    try:
        x509.load_pem_x509_certificates(ca_pem.encode())
    except ValueError:
        return "is not a PEM certificate bundle"
    return None


def load_chain(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
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


def alpn_protocols(settings: Any) -> tuple[str, ...]:
    """What the HTTPS listener offers by ALPN: ``h2`` first when HTTP/2 is on (docs/http2-grpc.md)."""
    return ("h2", "http/1.1") if getattr(settings, "http2", False) else ("http/1.1",)


def server_context(cert_pem: str, key_pem: str, ca_pem: str | None = None, min_version: str = "TLSv1.2",
                   ciphers: str | None = None, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """A listener context for one certificate (optionally trusting ``ca_pem`` for client certificates)."""

    def build() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS.get(min_version, ssl.TLSVersion.TLSv1_2)
        if ciphers:
            ctx.set_ciphers(ciphers)
        load_chain(ctx, cert_pem, key_pem)
        if ca_pem:
            ctx.load_verify_locations(cadata=ca_pem)
            ctx.verify_mode = ssl.CERT_OPTIONAL  # presence is enforced per request (APIG.0205)
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    return _cached(("server", cert_pem, key_pem, ca_pem, min_version, ciphers, alpn), build)


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
            load_chain(ctx, cert[0], cert[1])
        elif cert_files is not None:
            ctx.load_cert_chain(cert_files[0], cert_files[1] or None)
        return ctx

    return _cached(("client", verify, ca_file, ca_pem, cert, cert_files), build)
