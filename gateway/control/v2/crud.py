"""Generic create / list / get / update / delete over one :class:`~gateway.control.v2.resources.Resource`.

Role: control plane, off the request path. One handler set serves every collection of
:data:`~gateway.control.v2.resources.RESOURCES`; what differs between collections is a field or a hook of
the resource, never a branch on its name here. Every write goes through :func:`apply` (the store's one
write path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from gateway.control.common import (
    MASK,
    SECRET_FIELDS,
    AdminError,
    if_match,
    json_response,
    leftover_masks,
    missing_param,
    new_id,
    now_iso,
    read_body,
    version_headers,
)
from gateway.control.store import Change, DocumentStore
from gateway.control.v2.document import (
    Doc,
    Item,
    append_item,
    find,
    id_key,
    items,
    page,
    present,
    replace_item,
    rows_where,
    set_if_accepted,
)
from gateway.control.v2.resources import Resource, cascade_delete, resource_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
T = TypeVar("T")


async def apply(store: DocumentStore, request: web.Request, change: Change) -> dict[str, str]:
    """Run ``change`` through the store (``If-Match`` honoured); returns the new ETag header."""
    runtime = await store.apply(change, if_match(request), f"{request.method} {request.path}")
    return version_headers(runtime)


def no_masks(item: Item) -> None:
    masked = leftover_masks(item)
    if masked:
        raise AdminError(400, "APIG.2012", "Invalid parameter value: a masked secret was sent", problems=masked)


def parent_check(store: DocumentStore, res: Resource, request: web.Request) -> str | None:
    """The parent id of a nested URL, after checking that the parent exists (404 with its own code)."""
    ref = res.parent_ref()
    if ref is None or res.parent is None:
        return None
    value = request.match_info[res.parent[0]]
    if find(store.doc, ref.parent, value) is None:
        parent = resource_of(ref.parent)
        raise AdminError(404, parent.not_found, f"The {parent.noun} does not exist,id:{value}")
    return value


def lookup(res: Resource, request: web.Request, doc: Doc) -> Item:
    key = request.match_info[res.id_param]
    hit = find(doc, res.collection, key)  # ids are unique in a collection (O(1) through the active index)
    if hit is not None and (res.parent is None or str(hit.get(res.parent[1])) == request.match_info[res.parent[0]]):
        return hit
    if res.builtin is not None and key == str(res.builtin[res.key]):
        raise AdminError(400, "APIG.2011", res.builtin_readonly)
    raise AdminError(404, res.not_found, f"The {res.noun} does not exist,id:{key}")


def _name_tuple(res: Resource, item: Item) -> tuple[str, ...]:
    last = len(res.name_keys) - 1  # the name itself compares case-insensitively
    return tuple(str(item.get(n, "")).lower() if i == last else str(item.get(n)) for i, n in enumerate(res.name_keys))


def check_unique(res: Resource, doc: Doc, item: Item, self_key: str | None) -> None:
    if not res.name_keys or not item.get(res.name_keys[-1]):
        return
    want = _name_tuple(res, item)
    if len(res.name_keys) > 1 and res.name_keys[0] == "group_id":  # names are unique per group
        candidates = rows_where(doc, res.collection, "group_id", str(item.get("group_id")))
    else:
        candidates = items(doc, res.collection)
    for x in candidates:
        if self_key is not None and str(x.get(res.key)) == self_key:
            continue
        if _name_tuple(res, x) == want:
            last = res.name_keys[-1]  # a secret (an AppCode) is never echoed back
            shown = MASK if last in SECRET_FIELDS else item.get(last)
            raise AdminError(400, res.dup_code, f"The {res.noun} name already exists: {shown}")


def _clean_body(res: Resource, body: Item) -> Item:
    return {k: v for k, v in body.items() if k != res.key}


def _view(res: Resource, doc: Doc, item: Item, query: dict[str, str]) -> Item:
    return present(res.decorate(doc, item, query) if res.decorate else item)


async def create(store: DocumentStore, res: Resource, request: web.Request) -> web.StreamResponse:
    parent = parent_check(store, res, request)
    item = _clean_body(res, await read_body(request))
    item[res.key] = new_id()
    if res.parent is not None:
        item[res.parent[1]] = parent
    if res.generate:
        res.generate(item, store.port.settings)
    no_masks(item)
    now = now_iso()
    for f in (res.created, res.updated):
        if f:
            set_if_accepted(res.collection, item, f, now)

    def change(doc: Doc) -> str:
        check_unique(res, doc, item, None)
        return append_item(doc, res.collection, item)

    headers = await apply(store, request, change)
    doc = store.doc
    shown = res.decorate(doc, item, {}) if res.decorate else dict(item)
    if not res.show_secrets_on_create:  # else: the one time a generated secret is shown (documented)
        shown = present(shown)
    return json_response(shown, status=201, headers=headers)


def _filtered(res: Resource, rows: list[Item], query: Any) -> list[Item]:
    precise = query.get("precise_search", "")
    for f in res.filters:
        want = query.get(f)
        if want is None or want == "":
            continue
        key = res.key if f in ("id", "plugin_id") else f
        if key in ("name", "acl_name", "plugin_name", "variable_name") and key not in precise:
            rows = [x for x in rows if want.lower() in str(x.get(key, "")).lower()]
        else:
            rows = [x for x in rows if str(x.get(key)) == want]
    return rows


async def list_(store: DocumentStore, res: Resource, request: web.Request) -> web.StreamResponse:
    parent = parent_check(store, res, request)
    doc = store.doc
    rows = items(doc, res.collection)
    if res.builtin is not None and find(doc, res.collection, str(res.builtin[res.key])) is None:
        rows = [dict(res.builtin), *rows]
    if parent is not None and res.parent is not None:
        rows = [x for x in rows if str(x.get(res.parent[1])) == parent]
    rows = _filtered(res, rows, request.query)
    query = dict(request.query)
    if res.list_filter is not None:
        rows = res.list_filter(doc, rows, query)
    shown, total = page(request, rows)
    out = [_view(res, doc, x, query) for x in shown]
    return json_response({"total": total, "size": len(out), res.list_key: out},
                         headers=version_headers(store.runtime))


async def get(store: DocumentStore, res: Resource, request: web.Request) -> web.StreamResponse:
    parent_check(store, res, request)
    doc = store.doc
    key = request.match_info[res.id_param]
    if res.builtin is not None and key == str(res.builtin[res.key]) and find(doc, res.collection, key) is None:
        return json_response({k: v for k, v in res.builtin.items() if k != "remark"})
    item = lookup(res, request, doc)
    return json_response(_view(res, doc, item, dict(request.query)), headers=version_headers(store.runtime))


def updated_item(res: Resource, old: Item, body: Item) -> Item:
    """The element a PUT stores: merged or replaced, generated/secret fields kept, id and parent fixed."""
    if res.merge_update:
        item = {**old, **_clean_body(res, body)}
    else:
        item = _clean_body(res, body)
        for f in (*res.keep_on_update, *SECRET_FIELDS, res.created, "register_time", "create_time"):
            if f and f in old and f not in item:
                item[f] = old[f]
        if res.parent is not None:
            item[res.parent[1]] = old.get(res.parent[1])
    for f, v in list(item.items()):  # a masked secret sent back keeps the stored one
        if f in SECRET_FIELDS and v == MASK and f in old:
            item[f] = old[f]
    item[res.key] = old[res.key]
    no_masks(item)
    if res.updated:
        set_if_accepted(res.collection, item, res.updated, now_iso())
    return item


async def update(store: DocumentStore, res: Resource, request: web.Request) -> web.StreamResponse:
    parent_check(store, res, request)
    body = await read_body(request)
    old = lookup(res, request, store.doc)
    key = str(old[res.key])
    item = updated_item(res, old, body)

    def change(doc: Doc) -> str | None:
        check_unique(res, doc, item, key)
        if res.write_update is not None:
            return res.write_update(doc, key, item)
        i = replace_item(doc, res.collection, key, item)
        if i is None:
            raise AdminError(404, res.not_found, f"The {res.noun} does not exist,id:{key}")
        return f"{res.collection}[{i}]"

    headers = await apply(store, request, change)
    return json_response(_view(res, store.doc, item, {}), headers=headers)


async def delete(store: DocumentStore, res: Resource, request: web.Request) -> web.StreamResponse:
    parent_check(store, res, request)
    key = str(lookup(res, request, store.doc)[res.key])

    def change(doc: Doc) -> None:
        cascade_delete(doc, res.collection, {key})

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


def batch_delete(store: DocumentStore, collection: str, body_key: str, id_name: str, not_found: str,
                 noun: str) -> Handler:
    """``PUT <collection>?action=delete`` with ``{body_key: [ids]}`` (vendor batch unbind/delete)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("action") != "delete":
            raise AdminError(400, "APIG.2011", 'parameter action should be "delete"')
        body = await read_body(request)
        ids = body.get(body_key)
        if not isinstance(ids, list) or not ids or not all(isinstance(x, str) for x in ids):
            raise missing_param(body_key)
        key = id_key(collection)
        known = {str(x.get(key)) for x in items(store.doc, collection)}
        failure = [{id_name: x, "error_code": not_found, "error_msg": f"The {noun} does not exist"}
                   for x in dict.fromkeys(ids) if x not in known]
        doomed = {x for x in ids if x in known}

        def change(doc: Doc) -> None:
            cascade_delete(doc, collection, doomed)

        headers = await apply(store, request, change) if doomed else {}
        return json_response({"failure": failure, "success_count": len(doomed)}, headers=headers)

    return handler


def routes(store: DocumentStore, res: Resource, prefix: str) -> list[Route]:
    base = f"{prefix}/{res.path}"
    one = f"{base}/{{{res.id_param}}}"
    table: list[tuple[str, str, str, Callable[..., Awaitable[web.StreamResponse]]]] = [
        ("create", "POST", base, create), ("list", "GET", base, list_), ("get", "GET", one, get),
        ("update", "PUT", one, update), ("delete", "DELETE", one, delete)]
    out: list[Route] = []
    for op, method, path, fn in table:
        if op in res.methods:
            out.append((method, path, bind(fn, store, res)))
    return out


def bind(fn: Callable[[DocumentStore, T, web.Request], Awaitable[web.StreamResponse]], store: DocumentStore,
         spec: T) -> Handler:
    """A request handler calling ``fn(store, spec, request)``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await fn(store, spec, request)

    return handler
