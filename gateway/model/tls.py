"""Per-domain TLS settings of the snapshot, as the request path and the HTTPS listener read them.

Role in the pipeline: request time (the ``tls`` stage, the SNI callback). Compiled once per snapshot from
``groups[].url_domains[]`` by :mod:`gateway.pipeline.stages.tls` into ``Runtime.tls_domains``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DomainTls:
    context: ssl.SSLContext | None  # the domain's server certificate (None: the listener's default)
    min_version: str
    verify_client: bool


def lookup(table: Mapping[str, DomainTls], host: str) -> DomainTls | None:
    """The settings of ``host`` (exact name first, then ``*.parent``)."""
    host = host.lower().rstrip(".")
    found = table.get(host)
    if found is None and "." in host:
        found = table.get("*." + host.split(".", 1)[1])
    return found
