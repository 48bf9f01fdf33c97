"""Policy bindings: a throttle, ACL or signature key bound to API publications.

Role: control plane, off the request path. One handler set per :class:`~gateway.control.v2.resources.Binding`:
bind (``POST``), unbind one (``DELETE``) or many (``PUT ?action=delete``), the APIs bound to a policy
(``binded-apis``) and the policies bound to an API (``binded-throttles`` / ``binded-acls`` / ``binded-signs``).
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2 import queries
from gateway.control.v2.crud import Route, apply, batch_delete, bind
from gateway.control.v2.document import Doc, Item, env_name, find, items, listed, present, rows_where, set_if_accepted
from gateway.control.v2.resources import Binding, cascade_delete, resource_of


def publication(doc: Doc, publish_id: str) -> Item:
    pub = find(doc, "publishes", publish_id)
    if pub is None:
        raise AdminError(404, "APIG.3015", f"The API publication record does not exist,id:{publish_id}")
    return pub


def binding_view(b: Binding, doc: Doc, row: Item) -> Item:
    """A binding record with the API, environment and policy it joins (every name the vendor's models use)."""
    pub = find(doc, "publishes", str(row.get("publish_id"))) or {}
    api = find(doc, "apis", str(pub.get("api_id"))) or {}
    group = find(doc, "groups", str(api.get("group_id"))) or {}
    policy = find(doc, b.policy_collection, str(row.get(b.stored))) or {}
    env_id = pub.get("env_id")
    when = row.get(b.time_field)
    out = dict(row)
    out.update({b.body_field: row.get(b.stored), "bind_id": row.get("id"), "bind_time": when,
                "api_id": pub.get("api_id"), "api_name": api.get("name"), "api_type": api.get("type"),
                "api_remark": api.get("remark"), "req_method": api.get("req_method"), "req_uri": api.get("req_uri"),
                "auth_type": api.get("auth_type"), "group_id": api.get("group_id"), "group_name": group.get("name"),
                "env_id": env_id, "env_name": env_name(doc, str(env_id)), "scope": row.get("scope", 1)})
    pname = policy.get("name") or policy.get("acl_name")
    if pname is not None:
        out.setdefault("policy_name", pname)
        out[b.policy_name_field] = pname
    return out


def api_row(b: Binding, view: Item) -> Item:
    """A ``binded-apis`` row: the API (``id`` is the API's for throttles, as the vendor answers)."""
    if b.api_row_id != "api":
        return view
    return {**view, "id": view.get("api_id"), "name": view.get("api_name"), "type": view.get("api_type"),
            "remark": view.get("api_remark"), "throttle_apply_id": view.get("bind_id"),
            "run_env_id": view.get("env_id"), "run_env_name": view.get("env_name")}


def policy_row(b: Binding, view: Item, policy: Item) -> Item:
    """A ``binded-<policies>`` row: the policy with the binding's id, time and environment."""
    out = {**policy, **{k: view.get(k) for k in ("bind_id", "bind_time", "env_id", "env_name", "publish_id",
                                                  "api_id", "api_name", "group_name", b.time_field)}}
    out[b.body_field] = policy.get("id")
    out[b.policy_name_field] = view.get(b.policy_name_field)
    if b.policy_row_id == "binding":
        out["id"] = view.get("bind_id")
    return out


async def create(store: DocumentStore, b: Binding, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    policy_id = body.get(b.body_field)
    publish_ids = body.get("publish_ids")
    if not isinstance(policy_id, str) or not policy_id:
        raise missing_param(b.body_field)
    if not isinstance(publish_ids, list) or not publish_ids or not all(isinstance(p, str) for p in publish_ids):
        raise missing_param("publish_ids")
    doc = store.doc
    if find(doc, b.policy_collection, policy_id) is None:
        raise AdminError(404, b.policy_not_found, f"The policy does not exist,id:{policy_id}")
    for pid in publish_ids:
        publication(doc, pid)
    now = now_iso()
    rows: list[Item] = []

    def change(doc: Doc) -> str | None:
        elems = list(doc.get(b.collection) or [])
        existing = {(str(x.get(b.stored)), str(x.get("publish_id")))
                    for pid in dict.fromkeys(publish_ids) for x in rows_where(doc, b.collection, "publish_id", pid)}
        rows.clear()
        for pid in dict.fromkeys(publish_ids):
            if (policy_id, pid) in existing:
                continue
            row: Item = {"id": new_id(), b.stored: policy_id, "publish_id": pid}
            set_if_accepted(b.collection, row, b.time_field, now)
            elems.append(row)
            rows.append(row)
        doc[b.collection] = elems
        return None

    headers = await apply(store, request, change)
    doc = store.doc
    return json_response({b.response_key: [present(binding_view(b, doc, r)) for r in rows]},
                         status=201, headers=headers)


async def delete(store: DocumentStore, b: Binding, request: web.Request) -> web.StreamResponse:
    key = request.match_info["binding_id"]
    if find(store.doc, b.collection, key) is None:
        raise AdminError(404, b.not_found, f"The binding record does not exist,id:{key}")

    def change(doc: Doc) -> None:
        cascade_delete(doc, b.collection, {key})

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def bound_apis(store: DocumentStore, b: Binding, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    policy_id = request.query.get(b.body_field) or request.query.get(b.policy_query) or ""
    if not policy_id:
        raise missing_param(b.body_field)
    rows = [binding_view(b, doc, r) for r in items(doc, b.collection) if str(r.get(b.stored)) == policy_id]
    for f in ("env_id", "api_id"):
        if request.query.get(f):
            rows = [r for r in rows if r.get(f) == request.query[f]]
    if request.query.get("api_name"):
        rows = [r for r in rows if request.query["api_name"].lower() in str(r.get("api_name", "")).lower()]
    return json_response(listed(request, [present(api_row(b, r)) for r in rows], b.apis_key))


async def bound_policies(store: DocumentStore, b: Binding, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    api_id = request.query.get("api_id")
    if not api_id:
        raise missing_param("api_id")
    rows = [binding_view(b, doc, r) for r in items(doc, b.collection)]
    rows = [r for r in rows if r.get("api_id") == api_id]
    if request.query.get("env_id"):
        rows = [r for r in rows if r.get("env_id") == request.query["env_id"]]
    policies = []
    decorate = resource_of(b.policy_collection).decorate
    for r in rows:
        pol = find(doc, b.policy_collection, str(r.get(b.stored)))
        if pol is not None:
            shown = decorate(doc, pol, {}) if decorate is not None else pol
            policies.append(present(policy_row(b, r, shown)))
    return json_response(listed(request, policies, b.policies_key))


def routes(store: DocumentStore, b: Binding, prefix: str) -> list[Route]:
    base = f"{prefix}/{b.path}"

    out: list[Route] = []
    if b.batch_unbind:
        out.append(("PUT", base, batch_delete(store, b.collection, b.collection, "bind_id", b.not_found,
                                              "binding record")))
    out += [("POST", base, bind(create, store, b)), ("DELETE", f"{base}/{{binding_id}}", bind(delete, store, b)),
            ("GET", f"{base}/binded-apis", bind(bound_apis, store, b)),
            ("GET", f"{base}/unbinded-apis", bind(queries.unbound_apis, store, b)),
            ("GET", f"{base}/{b.policies_path}", bind(bound_policies, store, b))]
    return out
