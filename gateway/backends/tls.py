"""Client TLS for HTTPS backends: verification and client certificates.

Role in the pipeline: config-load time (step 17 of the request path uses the result). :func:`backend_ssl`
returns the client context an HTTPS backend is reached with: certificate and host-name verification on by
default (``Settings.backend_ca_file`` or the system store; ``backend_ssl_verify=false`` turns it off), plus a
client certificate when the backend has ``enable_client_ssl`` (feature ``backend_client_certificate`` or
``Settings.backend_client_cert_file`` / ``backend_client_key_file``). Contexts are cached per distinct
material, so pooled connections are shared. An untrusted backend certificate is a connection failure:
BACKEND_UNAVAILABLE 502.
"""

from __future__ import annotations

import ssl
from typing import Any

from gateway.core.settings import Settings
from gateway.lib.tls import client_context
from gateway.snapshot.features import feature_config
from gateway.snapshot.validate import Index


def backend_ssl(backend: dict[str, Any], index: Index, s: Settings, problems: list[str],
                path: str) -> ssl.SSLContext | None:
    """The client context for an HTTPS backend record (None after appending a problem)."""
    verify = bool(getattr(s, "backend_ssl_verify", True))
    ca_pem: str | None = None
    cert: tuple[str, str] | None = None
    files: tuple[str, str] | None = None
    if backend.get("enable_client_ssl"):
        feat = feature_config(index, "backend_client_certificate")
        if feat is not None and feat.get("content") and feat.get("key"):
            cert = (str(feat["content"]), str(feat["key"]))
            ca_pem = str(feat["ca"]) if feat.get("ca") else None
        elif getattr(s, "backend_client_cert_file", None):
            files = (str(s.backend_client_cert_file), str(getattr(s, "backend_client_key_file", "") or ""))
        else:
            problems.append(f"{path}.enable_client_ssl: no client certificate configured (feature "
                                  "backend_client_certificate or setting backend_client_cert_file)")
            return None
    try:
        return client_context(verify, s.backend_ca_file, ca_pem, cert, files)
    except (ssl.SSLError, OSError) as exc:
        problems.append(f"{path}: backend TLS settings cannot be used: {exc.__class__.__name__}: {exc}")
        return None
