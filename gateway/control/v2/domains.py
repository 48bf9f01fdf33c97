"""Custom domain names bound to an API group (``api-groups/{group_id}/domains``).

Role: control plane, off the request path. A bound domain is an element of the group's ``url_domains``:
calls whose Host is that domain reach the group, and a certificate attached to it is what the HTTPS
listener presents for that name (SNI). ``is_http_redirect_to_https`` makes the data plane answer
a plain-HTTP call on that domain with a redirect to HTTPS. Certificates are managed in the snapshot
(``certificate`` / ``private_key`` of the element, docs/tls.md).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.control.common import AdminError, bad_param, json_response, missing_param, new_id, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, domain_id, find, present, replace_item

FIELDS = ("min_ssl_version", "is_http_redirect_to_https", "verified_client_certificate_enabled")


def _group(doc: Doc, group_id: str) -> Item:
    group = find(doc, "groups", group_id)
    if group is None:
        raise AdminError(404, "APIG.3001", f"The API group does not exist,id:{group_id}")
    return group


def _view(d: Item) -> Item:
    return {"id": domain_id(d), "url_domain": d.get("domain"), "status": 3, "min_ssl_version": d.get("min_ssl_version",
            "TLSv1.1"), "is_http_redirect_to_https": bool(d.get("is_http_redirect_to_https", False)),
            "verified_client_certificate_enabled": bool(d.get("verified_client_certificate_enabled", False)),
            "ingress_http_port": -1, "ingress_https_port": -1}


def _options(body: dict[str, Any]) -> Item:
    out: Item = {}
    for f in FIELDS:
        if f in body and body[f] is not None:
            out[f] = body[f]
    if "is_http_redirect_to_https" in out and not isinstance(out["is_http_redirect_to_https"], bool):
        raise bad_param("is_http_redirect_to_https", "must be a boolean")
    return out


def _put_domains(doc: Doc, group_id: str, domains: list[Item]) -> str:
    group = {**_group(doc, group_id), "url_domains": domains}
    i = replace_item(doc, "groups", group_id, group)
    return f"groups[{i}]"


async def bind(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    group_id = request.match_info["group_id"]
    _group(store.doc, group_id)
    body = await read_body(request)
    name = body.get("url_domain")
    if not isinstance(name, str) or not name:
        raise missing_param("url_domain")
    element: Item = {"id": new_id(), "domain": name.lower(), **_options(body)}

    def change(doc: Doc) -> str:
        current = [d for d in _group(doc, group_id).get("url_domains") or [] if isinstance(d, dict)]
        if any(str(d.get("domain", "")).lower() == element["domain"] for d in current):
            raise AdminError(400, "APIG.3708", f"The domain name has been bound to the group: {name}")
        return _put_domains(doc, group_id, [*current, element])

    headers = await apply(store, request, change)
    return json_response(present(_view(element)), status=201, headers=headers)


async def update(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    group_id, wanted = request.match_info["group_id"], request.match_info["domain_id"]
    body = await read_body(request)
    options = _options(body)
    out: list[Item] = []

    def change(doc: Doc) -> str:
        current = [d for d in _group(doc, group_id).get("url_domains") or [] if isinstance(d, dict)]
        if not any(domain_id(d) == wanted for d in current):
            raise AdminError(404, "APIG.3020", f"The URL domain does not exist,id:{wanted}")
        new = [({**d, **options, "id": wanted} if domain_id(d) == wanted else d) for d in current]
        out.extend(d for d in new if domain_id(d) == wanted)
        return _put_domains(doc, group_id, new)

    headers = await apply(store, request, change)
    return json_response(present(_view(out[0])), headers=headers)


async def unbind(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    group_id, wanted = request.match_info["group_id"], request.match_info["domain_id"]

    def change(doc: Doc) -> str:
        current = [d for d in _group(doc, group_id).get("url_domains") or [] if isinstance(d, dict)]
        kept = [d for d in current if domain_id(d) != wanted]
        if len(kept) == len(current):
            raise AdminError(404, "APIG.3020", f"The URL domain does not exist,id:{wanted}")
        return _put_domains(doc, group_id, kept)

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def sl_domain_access(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``PUT api-groups/{group_id}/sl-domain-access-settings``: whether the group's own sub-domain answers."""
    group_id = request.match_info["group_id"]
    _group(store.doc, group_id)
    enabled = (await read_body(request)).get("sl_domain_access_enabled")
    if not isinstance(enabled, bool):
        raise missing_param("sl_domain_access_enabled")

    def change(doc: Doc) -> str:
        group = {**_group(doc, group_id), "sl_domain_access_enabled": enabled}
        return f"groups[{replace_item(doc, 'groups', group_id, group)}]"

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


# --- the certificate of a bound domain (served by SNI on the HTTPS listener) ---------------------------------
def _domain(doc: Doc, request: web.Request) -> tuple[Item, Item]:
    group = _group(doc, request.match_info["group_id"])
    wanted = request.match_info["domain_id"]
    found = next((d for d in group.get("url_domains") or [] if isinstance(d, dict) and domain_id(d) == wanted), None)
    if found is None:
        raise AdminError(404, "APIG.3020", f"The URL domain does not exist,id:{wanted}")
    return group, found


def _set_domain(doc: Doc, group: Item, wanted: str, new: Item | None) -> str:
    domains = [(new if domain_id(d) == wanted else d) for d in group.get("url_domains") or [] if isinstance(d, dict)]
    return _put_domains(doc, str(group["id"]), [d for d in domains if d is not None])


async def attach_certificate(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST .../domains/{domain_id}/certificate {name, cert_content, private_key}``."""
    body = await read_body(request)
    for f in ("name", "cert_content", "private_key"):
        if not isinstance(body.get(f), str) or not body[f]:
            raise missing_param(f)
    group, dom = _domain(store.doc, request)
    wanted = domain_id(dom)
    new = {**dom, "id": wanted, "certificate": body["cert_content"], "private_key": body["private_key"],
           "ssl_name": body["name"], "ssl_id": new_id()}

    def change(doc: Doc) -> str:
        current, _ = _domain(doc, request)
        return _set_domain(doc, current, wanted, new)

    headers = await apply(store, request, change)
    return json_response(present({**_view(new), "ssl_name": new["ssl_name"], "ssl_id": new["ssl_id"],
                                  "api_group_id": group.get("id"), "api_group_name": group.get("name")}),
                         status=201, headers=headers)


def _cert_or_404(dom: Item, certificate_id: str) -> x509.Certificate:
    if not dom.get("certificate") or str(dom.get("ssl_id", certificate_id)) != certificate_id:
        raise AdminError(404, "APIG.3040", f"The certificate does not exist,id:{certificate_id}")
    return x509.load_pem_x509_certificate(str(dom["certificate"]).encode())


async def show_certificate(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, dom = _domain(store.doc, request)
    cert = _cert_or_404(dom, request.match_info["certificate_id"])

    def attr(oid: x509.ObjectIdentifier) -> str | None:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        san = []
    return json_response({
        "id": dom.get("ssl_id") or request.match_info["certificate_id"], "name": dom.get("ssl_name"),
        "type": "instance", "instance_id": request.match_info["instance_id"], "common_name": attr(NameOID.COMMON_NAME),
        "san": san, "version": cert.version.value + 1, "organization": [attr(NameOID.ORGANIZATION_NAME)],
        "not_before": cert.not_valid_before_utc.isoformat(), "not_after": cert.not_valid_after_utc.isoformat(),
        "serial_number": format(cert.serial_number, "x"), "issuer": [cert.issuer.rfc4514_string()],
        "signature_algorithm": cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None})


async def detach_certificate(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, dom = _domain(store.doc, request)
    _cert_or_404(dom, request.match_info["certificate_id"])
    wanted = domain_id(dom)
    new = {k: v for k, v in dom.items() if k not in ("certificate", "private_key", "ssl_id", "ssl_name")}

    def change(doc: Doc) -> str:
        current, _ = _domain(doc, request)
        return _set_domain(doc, current, wanted, {**new, "id": wanted})

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)
