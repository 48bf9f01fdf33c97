"""Read-only v2 queries over publications: what is not bound yet, name checks, resource counts.

Role: control plane, off the request path. ``unbinded-apis`` / ``attachable-*`` list the publications a
policy, app or plug-in could still be bound to; ``api-groups/check`` and ``apis/check`` tell whether a
name or route is free; ``apps/validation/{id}`` whether an app exists; ``resources/outline/*`` count.
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.document import Doc, Item, env_name, find, items, listed, present
from gateway.control.v2.resources import Binding
from gateway.snapshot.collections import RELEASE_ENV_ID, served_definition


def publication_rows(doc: Doc, request: web.Request) -> list[Item]:
    """Every publication as an API row, filtered by the vendor's query parameters."""
    q = request.query
    rows = []
    for pub in items(doc, "publishes"):
        shared = find(doc, "apis", str(pub.get("api_id")))
        if shared is None:
            continue
        api = served_definition(shared, pub)  # what this environment serves
        group = find(doc, "groups", str(api.get("group_id"))) or {}
        env_id = str(pub.get("env_id"))
        rows.append({"id": api.get("id"), "api_id": api.get("id"), "name": api.get("name"),
                     "api_name": api.get("name"), "type": api.get("type"), "api_type": api.get("type"),
                     "remark": api.get("remark"), "api_remark": api.get("remark"), "group_id": api.get("group_id"),
                     "group_name": group.get("name"), "req_method": api.get("req_method"),
                     "req_uri": api.get("req_uri"), "req_protocol": api.get("req_protocol"),
                     "auth_type": api.get("auth_type"), "match_mode": api.get("match_mode"),
                     "publish_id": pub.get("publish_id"), "env_id": env_id, "env_name": env_name(doc, env_id),
                     "run_env_id": env_id, "run_env_name": env_name(doc, env_id)})
    for f in ("env_id", "group_id", "api_id", "req_method", "req_uri"):
        if q.get(f):
            rows = [r for r in rows if str(r.get(f)) == q[f]]
    if q.get("api_name"):
        rows = [r for r in rows if q["api_name"].lower() in str(r.get("name", "")).lower()]
    return rows


async def unbound_apis(store: DocumentStore, b: Binding, request: web.Request) -> web.StreamResponse:
    """``<binding>/unbinded-apis?<policy>=``: publications this policy is not bound to."""
    doc = store.doc
    policy_id = request.query.get(b.body_field) or request.query.get(b.policy_query) or ""
    if not policy_id:
        raise missing_param(b.policy_query)
    bound = {str(x.get("publish_id")) for x in items(doc, b.collection) if str(x.get(b.stored)) == policy_id}
    rows = [r for r in publication_rows(doc, request) if str(r["publish_id"]) not in bound]
    return json_response(listed(request, [present(r) for r in rows], "apis"))


async def apis_without_app(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``app-auths/unbinded-apis?app_id=``: APP-authenticated publications the app may not call yet."""
    doc = store.doc
    app_id = request.query.get("app_id")
    if not app_id:
        raise missing_param("app_id")
    if find(doc, "apps", app_id) is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    authorized = {(x.get("api_id"), x.get("env_id")) for x in items(doc, "app_auths") if x.get("app_id") == app_id}
    rows = [r for r in publication_rows(doc, request)
            if r["auth_type"] == "APP" and (r["api_id"], r["env_id"]) not in authorized]
    return json_response(listed(request, rows, "apis"))


def _attached(doc: Doc) -> set[tuple[str, str]]:
    return {(str(x.get("plugin_id")), str(x.get("publish_id"))) for x in items(doc, "plugin_bindings")}


async def attachable_apis(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``plugins/{plugin_id}/attachable-apis?env_id=``: publications the plug-in is not attached to."""
    doc = store.doc
    plugin_id = request.match_info["plugin_id"]
    if find(doc, "plugins", plugin_id) is None:
        raise AdminError(404, "APIG.3007", f"The plug-in does not exist,id:{plugin_id}")
    attached = _attached(doc)
    rows = [r for r in publication_rows(doc, request) if (plugin_id, str(r["publish_id"])) not in attached]
    return json_response(listed(request, rows, "apis"))


async def attachable_plugins(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``apis/{api_id}/attachable-plugins?env_id=``: plug-ins not attached to the API there."""
    doc = store.doc
    api_id = request.match_info["api_id"]
    if find(doc, "apis", api_id) is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    env_id = request.query.get("env_id") or RELEASE_ENV_ID
    pub = next((p for p in items(doc, "publishes") if p.get("api_id") == api_id and p.get("env_id") == env_id), {})
    attached = _attached(doc)
    rows = [{**p, "plugin_id": p.get("id")} for p in items(doc, "plugins")
            if (str(p.get("id")), str(pub.get("publish_id"))) not in attached]
    for f in ("plugin_type", "plugin_id"):
        if request.query.get(f):
            rows = [r for r in rows if str(r.get(f)) == request.query[f]]
    if request.query.get("plugin_name"):
        rows = [r for r in rows if request.query["plugin_name"].lower() in str(r.get("plugin_name", "")).lower()]
    return json_response(listed(request, [present(r) for r in rows], "plugins"))


async def check_group(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST api-groups/check {group_name}``: 204 when the name is free, else 400 APIG.3201."""
    name = (await read_body(request)).get("group_name")
    if not isinstance(name, str) or not name:
        raise missing_param("group_name")
    if any(str(g.get("name", "")).lower() == name.lower() for g in items(store.doc, "groups")):
        raise AdminError(400, "APIG.3201", f"The API group name already exists: {name}")
    return web.Response(status=204)


async def check_api(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST apis/check {type: name|path, ...}``: 204 when the API name or route is free in the group."""
    body = await read_body(request)
    kind = body.get("type")
    group_id = body.get("group_id")
    others = [a for a in items(store.doc, "apis") if a.get("id") != body.get("api_id")
              and (group_id is None or a.get("group_id") == group_id)]
    if kind == "name":
        name = str(body.get("name") or "")
        if not name:
            raise missing_param("name")
        if any(str(a.get("name", "")).lower() == name.lower() for a in others):
            raise AdminError(400, "APIG.3202", f"The API name already exists: {name}")
    elif kind == "path":
        for f in ("req_method", "req_uri"):
            if not body.get(f):
                raise missing_param(f)
        mode = body.get("match_mode") or "NORMAL"
        if any(a.get("req_method") == body["req_method"] and a.get("req_uri") == body["req_uri"]
               and (a.get("match_mode") or "NORMAL") == mode for a in others):
            raise AdminError(400, "APIG.3301", "The API already exists: same method, path and match mode")
    else:
        raise missing_param("type")
    return web.Response(status=204)


async def check_app(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    app_id = request.match_info["app_id"]
    app = find(store.doc, "apps", app_id)
    if app is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    return json_response({"id": app.get("id"), "name": app.get("name"), "remark": app.get("remark")})


async def outline_apis(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    apis = items(doc, "apis")
    released = {p.get("api_id") for p in items(doc, "publishes") if p.get("env_id") == RELEASE_ENV_ID}
    on = sum(1 for a in apis if a.get("id") in released)
    return json_response({"instance_num": len(apis), "nums_on_release": on, "nums_off_release": len(apis) - on})


async def outline_apps(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    apps = items(doc, "apps")
    authed = {x.get("app_id") for x in items(doc, "app_auths")}
    n = sum(1 for a in apps if a.get("id") in authed)
    return json_response({"authed_nums": n, "unauthed_nums": len(apps) - n})


async def outline_groups(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """No group is listed on a marketplace here: every group counts as off-sell."""
    return json_response({"onsell_nums": 0, "offsell_nums": len(items(store.doc, "groups"))})
