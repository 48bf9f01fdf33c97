"""Apps beyond CRUD: authorizations to call APIs, the app's own ACL, AppCode generation, secret reset.

Role: control plane, off the request path.
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, bad_param, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import (
    Doc,
    Item,
    env_exists,
    env_name,
    find,
    items,
    page,
    present,
    set_if_accepted,
)
from gateway.control.v2.resources import cascade_delete, gen_app_code, gen_secret


async def app_auths_create(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    doc = store.doc
    env_id = body.get("env_id")
    app_ids, api_ids = body.get("app_ids"), body.get("api_ids")
    if not isinstance(env_id, str) or not env_id:
        raise missing_param("env_id")
    for name, value in (("app_ids", app_ids), ("api_ids", api_ids)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise missing_param(name)
    if not env_exists(doc, env_id):
        raise AdminError(404, "APIG.3003", f"The environment does not exist,id:{env_id}")
    for a in app_ids:  # type: ignore[union-attr]
        if find(doc, "apps", a) is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{a}")
    for a in api_ids:  # type: ignore[union-attr]
        if find(doc, "apis", a) is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist,id:{a}")
    rows: list[Item] = []
    now = now_iso()

    def change(doc: Doc) -> str | None:
        elems = list(doc.get("app_auths") or [])
        have = {(x.get("app_id"), x.get("api_id"), x.get("env_id")) for x in items(doc, "app_auths")}
        for app in app_ids:  # type: ignore[union-attr]
            for api in api_ids:  # type: ignore[union-attr]
                if (app, api, env_id) in have:
                    continue
                row: Item = {"id": new_id(), "app_id": app, "api_id": api, "env_id": env_id}
                set_if_accepted("app_auths", row, "auth_time", now)
                elems.append(row)
                rows.append(row)
        doc["app_auths"] = elems
        return None

    headers = await apply(store, request, change)
    shown = [{**r, "auth_result": {"status": "SUCCESS"}, "auth_role": "PROVIDER", "auth_tunnel": "NORMAL"}
             for r in rows]
    return json_response({"auths": shown}, status=201, headers=headers)


async def app_auths_delete(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    key = request.match_info["app_auth_id"]
    if find(store.doc, "app_auths", key) is None:
        raise AdminError(404, "APIG.3009", f"The app authorization record does not exist,id:{key}")

    def change(doc: Doc) -> None:
        cascade_delete(doc, "app_auths", {key})

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def app_auths_list(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    rows = items(doc, "app_auths")
    for f in ("app_id", "api_id", "env_id"):
        if request.query.get(f):
            rows = [r for r in rows if r.get(f) == request.query[f]]
    out = [auth_row(doc, r) for r in rows]
    for f in ("api_name", "app_name"):
        if request.query.get(f):
            out = [r for r in out if request.query[f].lower() in str(r.get(f, "")).lower()]
    page_, total = page(request, out)
    return json_response({"total": total, "size": len(page_), "auths": [present(x) for x in page_]})


def auth_row(doc: Doc, r: Item) -> Item:
    """An authorization with the API, app, group and publication it joins (the vendor's ApiAuthInfo)."""
    api = find(doc, "apis", str(r.get("api_id"))) or {}
    app = find(doc, "apps", str(r.get("app_id"))) or {}
    group = find(doc, "groups", str(api.get("group_id"))) or {}
    pub = next((p for p in items(doc, "publishes")
                if p.get("api_id") == r.get("api_id") and p.get("env_id") == r.get("env_id")), {})
    return {**r, "api_name": api.get("name"), "api_type": api.get("type"), "api_remark": api.get("remark"),
            "app_name": app.get("name"), "app_remark": app.get("remark"), "app_type": app.get("app_type", "apig"),
            "app_creator": app.get("creator", "USER"), "env_name": env_name(doc, str(r.get("env_id"))),
            "group_id": api.get("group_id"), "group_name": group.get("name"), "publish_id": pub.get("publish_id"),
            "auth_role": r.get("auth_role", "PROVIDER"), "auth_tunnel": r.get("auth_tunnel", "NORMAL"),
            "req_method": api.get("req_method"), "req_uri": api.get("req_uri")}


async def app_acl(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    app_id = request.match_info["app_id"]
    doc = store.doc
    if find(doc, "apps", app_id) is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    current = next((x for x in items(doc, "app_acls") if x.get("app_id") == app_id), None)
    if request.method == "GET":
        return json_response(current or {"app_id": app_id, "app_acl_type": None, "app_acl_values": []})
    if request.method == "DELETE":
        def remove(doc: Doc) -> None:
            doc["app_acls"] = [x for x in doc.get("app_acls") or []
                               if not (isinstance(x, dict) and x.get("app_id") == app_id)]

        headers = await apply(store, request, remove)
        return web.Response(status=204, headers=headers)
    body = await read_body(request)
    if body.get("app_acl_type") not in ("PERMIT", "DENY"):
        raise bad_param("app_acl_type")
    values = body.get("app_acl_values")
    if not isinstance(values, list) or not values:
        raise missing_param("app_acl_values")
    row = {"app_id": app_id, "app_acl_type": body["app_acl_type"], "app_acl_values": values}

    def put(doc: Doc) -> str:
        elems = [x for x in doc.get("app_acls") or [] if not (isinstance(x, dict) and x.get("app_id") == app_id)]
        elems.append(row)
        doc["app_acls"] = elems
        return f"app_acls[{len(elems) - 1}]"

    headers = await apply(store, request, put)
    return json_response(row, headers=headers)


async def app_code_generate(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    app_id = request.match_info["app_id"]
    if find(store.doc, "apps", app_id) is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    row: Item = {"id": new_id(), "app_id": app_id, "app_code": gen_app_code()}
    set_if_accepted("app_codes", row, "create_time", now_iso())

    def change(doc: Doc) -> str:
        elems = list(doc.get("app_codes") or [])
        elems.append(row)
        doc["app_codes"] = elems
        return f"app_codes[{len(elems) - 1}]"

    headers = await apply(store, request, change)
    return json_response(row, status=201, headers=headers)


async def app_secret_reset(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    app_id = request.match_info["app_id"]
    old = find(store.doc, "apps", app_id)
    if old is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    body = await read_body(request, required=False)
    secret = body.get("app_secret") or gen_secret(32)
    item = {**old, "app_secret": secret}
    set_if_accepted("apps", item, "update_time", now_iso())

    def change(doc: Doc) -> str:
        elems = list(doc.get("apps") or [])
        i = next(i for i, x in enumerate(elems) if isinstance(x, dict) and str(x.get("id")) == app_id)
        elems[i] = item
        doc["apps"] = elems
        return f"apps[{i}]"

    headers = await apply(store, request, change)
    return json_response(item, status=201, headers=headers)
