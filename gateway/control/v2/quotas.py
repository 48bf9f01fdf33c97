"""Credential quotas bound to apps (``app-quotas/{id}/binding-apps``, ``bound-apps``, ``apps/{id}/bound-quota``).

Role: control plane, off the request path. A quota (``quotas``) caps the calls of each app bound to it
(``quota_bindings``, ``{quota_id, app_id}``); an app has at most one quota. The quota itself is a generic
resource (:data:`gateway.control.v2.resources.RESOURCES`); these are its binding paths.
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, find, items, listed, present
from gateway.control.v2.resources import decorate_quota


def _quota(doc: Doc, quota_id: str) -> Item:
    quota = find(doc, "quotas", quota_id)
    if quota is None:
        raise AdminError(404, "APIG.3080", f"The credential quota does not exist,id:{quota_id}")
    return quota


def _quota_of(b: Item) -> str:
    return str(b.get("quota_id") or b.get("app_quota_id"))


def _app_row(doc: Doc, app: Item, quota: Item | None, binding: Item | None) -> Item:
    return present({"app_id": app.get("id"), "name": app.get("name"), "status": app.get("status", 1),
                    "app_key": app.get("app_key"), "remark": app.get("remark"),
                    "register_time": app.get("register_time"), "update_time": app.get("update_time"),
                    "app_quota_id": quota.get("id") if quota else None,
                    "app_quota_name": quota.get("name") if quota else None,
                    "bound_time": binding.get("bound_time") if binding else None})


async def bind_apps(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    quota_id = request.match_info["app_quota_id"]
    _quota(store.doc, quota_id)
    app_ids = (await read_body(request)).get("app_ids")
    if not isinstance(app_ids, list) or not app_ids or not all(isinstance(a, str) for a in app_ids):
        raise missing_param("app_ids")
    for a in app_ids:
        if find(store.doc, "apps", a) is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{a}")
    now = now_iso()
    rows: list[Item] = []

    def change(doc: Doc) -> None:
        rows.clear()
        bound = {str(b.get("app_id")): b for b in items(doc, "quota_bindings")}
        for a in dict.fromkeys(app_ids):
            if a in bound and _quota_of(bound[a]) != quota_id:
                raise AdminError(400, "APIG.3081", f"The app is already bound to another credential quota,id:{a}")
        kept = [b for b in items(doc, "quota_bindings") if str(b.get("app_id")) not in app_ids]
        for a in dict.fromkeys(app_ids):
            row = {"quota_id": quota_id, "app_id": a}
            kept.append(bound.get(a) or row)
            rows.append({"app_quota_id": quota_id, "app_id": a, "bound_time": now})
        doc["quota_bindings"] = kept

    headers = await apply(store, request, change)
    return json_response({"applies": rows}, status=201, headers=headers)


async def unbind_app(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    quota_id, app_id = request.match_info["app_quota_id"], request.match_info["app_id"]
    _quota(store.doc, quota_id)

    def change(doc: Doc) -> None:
        kept = [b for b in items(doc, "quota_bindings")
                if not (str(b.get("app_id")) == app_id and _quota_of(b) == quota_id)]
        if len(kept) == len(items(doc, "quota_bindings")):
            raise AdminError(404, "APIG.3004", f"The app is not bound to this credential quota,id:{app_id}")
        doc["quota_bindings"] = kept

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def bound_apps(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``bound-apps`` (the quota's apps) or ``bindable-apps`` (apps without a quota)."""
    doc = store.doc
    quota = _quota(doc, request.match_info["app_quota_id"])
    bindings = {str(b.get("app_id")): b for b in items(doc, "quota_bindings")}
    want_bound = request.path.endswith("bound-apps") and not request.path.endswith("bindable-apps")
    rows = []
    for app in items(doc, "apps"):
        b = bindings.get(str(app.get("id")))
        if want_bound and b is not None and _quota_of(b) == str(quota["id"]):
            rows.append(_app_row(doc, app, quota, b))
        elif not want_bound and b is None:
            rows.append(_app_row(doc, app, None, None))
    if request.query.get("app_name"):
        rows = [r for r in rows if request.query["app_name"].lower() in str(r.get("name", "")).lower()]
    return json_response(listed(request, rows, "apps"))


async def quota_of_app(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    app_id = request.match_info["app_id"]
    if find(doc, "apps", app_id) is None:
        raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
    b = next((b for b in items(doc, "quota_bindings") if str(b.get("app_id")) == app_id), None)
    if b is None:
        return json_response({})
    return json_response(decorate_quota(doc, _quota(doc, _quota_of(b)), {}))
