"""Plug-ins bound to published APIs: attach, detach, and the lists of both sides.

Role: control plane, off the request path. One plug-in per type per (API, environment): attaching a
second plug-in of the same type replaces the first (vendor behaviour).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import (
    Doc,
    Item,
    env_name,
    find,
    id_key,
    items,
    page,
    present,
    set_if_accepted,
)
from gateway.control.v2.resources import cascade_delete


def _pairs(doc: Doc, request: web.Request, body: Item) -> tuple[str, list[tuple[str, str]]]:
    """(env_id, [(plugin_id, publish_id)]) named by the path and the body, every one checked."""
    env_id = body.get("env_id")
    if not isinstance(env_id, str) or not env_id:
        raise missing_param("env_id")
    plugin_ids: Any
    api_ids: Any
    if "plugin_id" in request.match_info:
        plugin_ids, api_ids, list_name = [request.match_info["plugin_id"]], body.get("api_ids"), "api_ids"
    else:
        plugin_ids, api_ids, list_name = body.get("plugin_ids"), [request.match_info["api_id"]], "plugin_ids"
    given = api_ids if list_name == "api_ids" else plugin_ids
    if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
        raise missing_param(list_name)
    pairs: list[tuple[str, str]] = []
    for pl in plugin_ids:
        if find(doc, "plugins", pl) is None:
            raise AdminError(404, "APIG.3007", f"The plug-in does not exist,id:{pl}")
        for api in api_ids:
            if find(doc, "apis", api) is None:
                raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api}")
            pub = next((p for p in items(doc, "publishes")
                        if p.get("api_id") == api and p.get("env_id") == env_id), None)
            if pub is None:
                raise AdminError(409, "APIG.3707", "Only published APIs can be bound with plug-ins.")
            pairs.append((pl, str(pub["publish_id"])))
    return env_id, pairs


def _attach(doc: Doc, pairs: list[tuple[str, str]], now: str, rows: list[Item]) -> None:
    """Bind each pair; one plug-in per type per (API, environment): a later binding replaces (vendor)."""
    wanted = set(pairs)
    have = {(str(x.get("plugin_id")), str(x.get("publish_id"))) for x in items(doc, "plugin_bindings")}
    type_of = {str(p.get(id_key("plugins"))): p.get("plugin_type") for p in items(doc, "plugins")}
    replaced = {(type_of.get(pl), pid) for pl, pid in pairs}
    elems = [x for x in items(doc, "plugin_bindings") if (str(x.get("plugin_id")), str(x.get("publish_id"))) in wanted
             or (type_of.get(str(x.get("plugin_id"))), str(x.get("publish_id"))) not in replaced]
    for pl, pid in pairs:
        if (pl, pid) not in have:
            row: Item = {"id": new_id(), "plugin_id": pl, "publish_id": pid}
            set_if_accepted("plugin_bindings", row, "attached_time", now)
            elems.append(row)
            rows.append(row)
    doc["plugin_bindings"] = elems


def _attached_view(doc: Doc, row: Item, env_id: str, now: str) -> Item:
    pub = find(doc, "publishes", str(row["publish_id"])) or {}
    plugin = find(doc, "plugins", str(row["plugin_id"])) or {}
    api = find(doc, "apis", str(pub.get("api_id"))) or {}
    return {"plugin_attach_id": row["id"], "plugin_id": row["plugin_id"], "plugin_name": plugin.get("plugin_name"),
            "plugin_type": plugin.get("plugin_type"), "plugin_scope": plugin.get("plugin_scope"), "env_id": env_id,
            "env_name": env_name(doc, env_id), "api_id": pub.get("api_id"), "api_name": api.get("name"),
            "attached_time": now}


async def plugin_attach(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """Attach (POST) or detach (PUT) plug-ins and APIs, from the plug-in's side or the API's."""
    env_id, pairs = _pairs(store.doc, request, await read_body(request))
    detach = request.method == "PUT"
    rows: list[Item] = []
    now = now_iso()

    def change(doc: Doc) -> str | None:
        rows.clear()
        if detach:
            cascade_delete(doc, "plugin_bindings", {str(x.get("id")) for x in items(doc, "plugin_bindings")
                                                    if (str(x.get("plugin_id")), str(x.get("publish_id"))) in pairs})
        else:
            _attach(doc, pairs, now, rows)
        return None

    headers = await apply(store, request, change)
    if detach:
        return web.Response(status=204, headers=headers)
    shown = [_attached_view(store.doc, r, env_id, now) for r in rows]
    return json_response({"attached_plugins": shown}, status=201, headers=headers)


async def plugin_attached(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    rows = []
    for r in items(doc, "plugin_bindings"):
        pub = find(doc, "publishes", str(r.get("publish_id"))) or {}
        if "plugin_id" in request.match_info and r.get("plugin_id") != request.match_info["plugin_id"]:
            continue
        if "api_id" in request.match_info and pub.get("api_id") != request.match_info["api_id"]:
            continue
        if request.query.get("env_id") and pub.get("env_id") != request.query["env_id"]:
            continue
        plugin = find(doc, "plugins", str(r.get("plugin_id"))) or {}
        api = find(doc, "apis", str(pub.get("api_id"))) or {}
        group = find(doc, "groups", str(api.get("group_id"))) or {}
        rows.append({"plugin_attach_id": r.get("id"), "plugin_id": r.get("plugin_id"),
                     "plugin_name": plugin.get("plugin_name"), "plugin_type": plugin.get("plugin_type"),
                     "plugin_scope": plugin.get("plugin_scope"), "plugin_content": plugin.get("plugin_content"),
                     "env_id": pub.get("env_id"), "env_name": env_name(doc, str(pub.get("env_id"))),
                     "api_id": pub.get("api_id"), "api_name": api.get("name"), "publish_id": pub.get("publish_id"),
                     "attached_time": r.get("attached_time"), "type": api.get("type"),
                     "req_protocol": api.get("req_protocol"), "req_method": api.get("req_method"),
                     "req_uri": api.get("req_uri"), "auth_type": api.get("auth_type"),
                     "match_mode": api.get("match_mode"), "remark": api.get("remark"),
                     "group_id": api.get("group_id"), "group_name": group.get("name")})
    page_, total = page(request, rows)
    key = "plugins" if "api_id" in request.match_info else "apis"
    return json_response({"total": total, "size": len(page_), key: [present(x) for x in page_]})
