"""SSL certificates kept by the control plane and attached to bound domains (``/v2/{project_id}/apigw/certificates``).

Role: control plane, off the request path. A certificate (``certificates``, control-plane state the data
plane never reads) holds a PEM chain and its key. Attaching it to a domain copies both onto that
``url_domains`` element, which is what the HTTPS listener presents for the name (SNI); updating the
certificate updates every domain it is attached to; a certificate still attached cannot be deleted.
Answers describe the certificate (names, dates, issuer), never the key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from gateway.control.common import AdminError, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, domain_id, find, items, listed, replace_item

COLLECTION = "certificates"
CERT_FIELDS = ("certificate", "private_key", "ssl_id", "ssl_name")


def details(pem: str) -> Item:
    """What the vendor answers about a certificate, read from the PEM."""
    cert = x509.load_pem_x509_certificate(pem.encode())

    def attr(oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        san = []
    cn = attr(NameOID.COMMON_NAME)
    return {"common_name": cn[0] if cn else None, "san": san, "version": cert.version.value + 1,
            "organization": attr(NameOID.ORGANIZATION_NAME),
            "organizational_unit": attr(NameOID.ORGANIZATIONAL_UNIT_NAME),
            "locality": attr(NameOID.LOCALITY_NAME), "state": attr(NameOID.STATE_OR_PROVINCE_NAME),
            "country": attr(NameOID.COUNTRY_NAME), "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "serial_number": format(cert.serial_number, "x"),
            "issuer": [cert.issuer.rfc4514_string()],
            "signature_algorithm": cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None}


def _checked(body: dict[str, Any]) -> Item:
    for f in ("name", "cert_content", "private_key"):
        if not isinstance(body.get(f), str) or not body[f]:
            raise missing_param(f)
    try:
        cert = x509.load_pem_x509_certificate(body["cert_content"].encode())
        key = serialization.load_pem_private_key(body["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:cert_content/private_key. "
                         "not a PEM certificate and unencrypted PEM private key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            key.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:private_key. "
                         "does not match the certificate")
    out: Item = {"name": body["name"], "cert_content": body["cert_content"], "private_key": body["private_key"],
                 "type": str(body.get("type") or "instance")}
    if body.get("trusted_root_ca"):
        out["trusted_root_ca"] = body["trusted_root_ca"]
    return out


def view(c: Item, instance_id: str | None = None) -> Item:
    return {"id": c.get("id"), "name": c.get("name"), "type": c.get("type", "instance"), "instance_id": instance_id,
            "create_time": c.get("create_time"), "update_time": c.get("update_time"),
            "is_has_trusted_root_ca": bool(c.get("trusted_root_ca")), "algorithm_type": "RSA",
            **details(str(c["cert_content"]))}


def _cert(doc: Doc, cid: str) -> Item:
    c = find(doc, COLLECTION, cid)
    if c is None:
        raise AdminError(404, "APIG.3040", f"The certificate does not exist,id:{cid}")
    return c


def _domains_where(doc: Doc, keep: Any) -> list[tuple[Item, Item]]:
    return [(g, d) for g in items(doc, "groups") for d in g.get("url_domains") or []
            if isinstance(d, dict) and keep(d)]


def _rewrite(doc: Doc, edit: Any) -> None:
    """Apply ``edit(domain) -> domain`` to every bound domain of every group (unchanged ones kept as they are)."""
    for g in items(doc, "groups"):
        domains = [edit(d) if isinstance(d, dict) else d for d in g.get("url_domains") or []]
        if domains != (g.get("url_domains") or []):
            replace_item(doc, "groups", str(g["id"]), {**g, "url_domains": domains})


def _attach(cert: Item) -> Any:
    return lambda d: {**d, "id": domain_id(d), "certificate": cert["cert_content"], "private_key": cert["private_key"],
                      "ssl_id": cert["id"], "ssl_name": cert["name"]}


def _detach(d: Item) -> Item:
    return {k: v for k, v in d.items() if k not in CERT_FIELDS}


async def create(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    cert = {"id": new_id(), **_checked(await read_body(request)), "create_time": now_iso(), "update_time": now_iso()}

    def change(doc: Doc) -> str:
        doc[COLLECTION] = [*items(doc, COLLECTION), cert]
        return f"{COLLECTION}[{len(doc[COLLECTION]) - 1}]"

    headers = await apply(store, request, change)
    return json_response(view(cert), status=201, headers=headers)


async def list_(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    rows = [view(c) for c in items(store.doc, COLLECTION)]
    for f in ("name", "common_name"):
        if request.query.get(f):
            rows = [r for r in rows if request.query[f].lower() in str(r.get(f) or "").lower()]
    return json_response(listed(request, rows, "certs"))


async def show(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    return json_response(view(_cert(store.doc, request.match_info["certificate_id"])))


async def update(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    cid = request.match_info["certificate_id"]
    old = _cert(store.doc, cid)
    cert = {**old, **_checked(await read_body(request)), "update_time": now_iso()}

    def change(doc: Doc) -> str:
        i = replace_item(doc, COLLECTION, cid, cert)
        _rewrite(doc, lambda d: _attach(cert)(d) if d.get("ssl_id") == cid else d)  # attached domains follow
        return f"{COLLECTION}[{i}]"

    headers = await apply(store, request, change)
    return json_response(view(cert), headers=headers)


async def delete(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    cid = request.match_info["certificate_id"]
    _cert(store.doc, cid)
    if _domains_where(store.doc, lambda d: d.get("ssl_id") == cid):
        raise AdminError(400, "APIG.3041", "The certificate is attached to domain names; detach it first")

    def change(doc: Doc) -> None:
        doc[COLLECTION] = [c for c in items(doc, COLLECTION) if str(c.get("id")) != cid]

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def attach_domains(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST certificates/{id}/domains/attach|detach {domains: [{domain}]}``."""
    cid = request.match_info["certificate_id"]
    cert = _cert(store.doc, cid)
    given = (await read_body(request)).get("domains")
    if not isinstance(given, list) or not given or not all(isinstance(x, dict) and x.get("domain") for x in given):
        raise missing_param("domains")
    names = {str(x["domain"]).lower() for x in given}
    known = {str(d.get("domain", "")).lower() for _, d in _domains_where(store.doc, lambda d: True)}
    if not names <= known:
        raise AdminError(404, "APIG.3020", f"The URL domain does not exist: {sorted(names - known)[0]}")
    attach = request.path.endswith("/attach")

    def edit(d: Item) -> Item:
        if str(d.get("domain", "")).lower() not in names:
            return d
        return _attach(cert)(d) if attach else (_detach(d) if d.get("ssl_id") == cid else d)

    headers = await apply(store, request, lambda doc: _rewrite(doc, edit))
    return web.Response(status=204, headers=headers)


async def attached_domains(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    cid = request.match_info["certificate_id"]
    _cert(store.doc, cid)
    rows = [{"id": domain_id(d), "url_domain": d.get("domain"), "status": 3, "ssl_id": cid,
             "ssl_name": d.get("ssl_name"), "min_ssl_version": d.get("min_ssl_version", "TLSv1.1"),
             "is_http_redirect_to_https": bool(d.get("is_http_redirect_to_https")),
             "verified_client_certificate_enabled": bool(d.get("verified_client_certificate_enabled")),
             "api_group_id": g.get("id"), "api_group_name": g.get("name")}
            for g, d in _domains_where(store.doc, lambda d: d.get("ssl_id") == cid)]
    if request.query.get("url_domain"):
        rows = [r for r in rows if request.query["url_domain"].lower() in str(r["url_domain"]).lower()]
    return json_response(listed(request, rows, "bound_domains"))


async def domain_certs(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST api-groups/{gid}/domains/{did}/certificates/attach|detach {certificate_ids}`` (one per domain)."""
    ids = (await read_body(request)).get("certificate_ids")
    if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:certificate_ids. "
                         "exactly one certificate per domain")
    cert = _cert(store.doc, ids[0])
    group = find(store.doc, "groups", request.match_info["group_id"])
    if group is None:
        raise AdminError(404, "APIG.3001", f"The API group does not exist,id:{request.match_info['group_id']}")
    wanted = request.match_info["domain_id"]
    if not any(isinstance(d, dict) and domain_id(d) == wanted for d in group.get("url_domains") or []):
        raise AdminError(404, "APIG.3020", f"The URL domain does not exist,id:{wanted}")
    attach = request.path.endswith("/attach")

    def edit(d: Item) -> Item:
        if domain_id(d) != wanted:
            return d
        return _attach(cert)(d) if attach else (_detach(d) if d.get("ssl_id") == cert["id"] else d)

    headers = await apply(store, request, lambda doc: _rewrite(doc, edit))
    return web.Response(status=204, headers=headers)
