"""Custom domain names bound to an API group (``api-groups/{group_id}/domains``).

Role: control plane, off the request path. A bound domain is an element of the group's ``url_domains``:
calls whose Host is that domain reach the group. ``is_http_redirect_to_https`` makes the data plane answer
a plain-HTTP call on that domain with a redirect to HTTPS. Certificates are managed in the snapshot
(``certificate`` / ``private_key`` of the element, docs/tls.md).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
