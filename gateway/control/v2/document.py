"""Reading the admin document for the v2 handlers: find, list, page, present.

Role: control plane, off the request path. The document is the active snapshot (a dict of collections);
handlers never mutate its elements in place: a change replaces an element or a collection on a
:func:`gateway.control.store.fresh` copy (see :class:`gateway.control.store.DocumentStore`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from gateway.control.common import bad_param, mask
from gateway.pipeline.chain import COLLECTIONS
from gateway.snapshot import delta
from gateway.snapshot.collections import RELEASE_ENV_ID, RELEASE_ENV_NAME

Doc = dict[str, Any]
Item = dict[str, Any]


def accepts(collection: str, name: str) -> bool:
    """Whether elements of ``collection`` may carry field ``name`` (declared, output-only, or open schema)."""
    schema = COLLECTIONS[collection][0]
    return schema.open or name in schema.fields or name in schema.output_only


def id_key(collection: str) -> str:
    return COLLECTIONS[collection][1] or "id"


def keyed(collection: str) -> bool:
    """Whether the collection's elements have an id field (keyless ones are removed by value)."""
    return collection in COLLECTIONS and COLLECTIONS[collection][1] is not None


def pick_field(collection: str, *candidates: str) -> str:
    """The first candidate field name the collection's schema declares (the first one for open schemas)."""
    schema = COLLECTIONS[collection][0]
    for c in candidates:
        if c in schema.fields:
            return c
    return candidates[0]


def set_if_accepted(collection: str, item: Item, name: str, value: Any) -> None:
    if accepts(collection, name):
        item[name] = value


def items(doc: Doc, collection: str) -> list[Item]:
    return [x for x in doc.get(collection) or [] if isinstance(x, dict)]


def find(doc: Doc, collection: str, key: str) -> Item | None:
    hit = delta.lookup(doc, collection, key)  # O(1) through the active document's index when it has one
    if hit is not delta.MISSING:
        return hit
    k = id_key(collection)
    for x in items(doc, collection):
        if str(x.get(k)) == key:
            return x
    return None


def env_name(doc: Doc, env_id: str) -> str | None:
    if env_id == RELEASE_ENV_ID:
        return RELEASE_ENV_NAME
    env = find(doc, "environments", env_id)
    return env.get("name") if env else None


def env_exists(doc: Doc, env_id: str) -> bool:
    return env_id == RELEASE_ENV_ID or find(doc, "environments", env_id) is not None


def replace_item(doc: Doc, collection: str, key: str, item: Item) -> int | None:
    """Replace the element with id ``key`` by ``item`` in ``doc`` (a fresh copy); its index, or None."""
    elems = doc.get(collection) or []
    hit = delta.lookup(doc, collection, key)  # through the active index: the position is then found in C
    if hit is not delta.MISSING:
        done = delta.replaced(elems, hit, item) if hit is not None else None
        if done is None:
            return None
        doc[collection] = done[0]
        return done[1]
    k = id_key(collection)
    elems = list(elems)
    for i, x in enumerate(elems):
        if isinstance(x, dict) and str(x.get(k)) == key:
            elems[i] = item
            doc[collection] = elems
            return i
    return None


def rows_where(doc: Doc, collection: str, field: str, value: str) -> list[Item]:
    """The elements of ``collection`` whose ``field`` is ``value`` (through the active index when it has one)."""
    rows = delta.rows_of(doc, collection, field, value)
    if rows is not None:
        return rows
    return [x for x in items(doc, collection) if str(x.get(field)) == value]


def append_item(doc: Doc, collection: str, item: Item) -> str:
    """Append ``item`` to ``collection`` of ``doc`` (a fresh copy); the element's problem-path prefix."""
    elems = doc[collection] = delta.appended(doc.get(collection) or [], item)
    return f"{collection}[{len(elems) - 1}]"


def domain_id(d: Item) -> str:
    """A bound domain's id; a domain written without one (a snapshot file) gets one derived from its name."""
    name = str(d.get("domain", "")).lower().encode()
    return str(d.get("id") or hashlib.md5(name, usedforsecurity=False).hexdigest())


def present(item: Item) -> Item:
    """An element as answered: credentials masked."""
    return mask(item)


def page(request: web.Request, rows: list[Item]) -> tuple[list[Item], int]:
    """``offset``/``limit`` paging (vendor default 20, at most 500)."""
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise bad_param("offset/limit", "must be integers") from None
    if limit <= 0:
        limit = 20
    limit = min(limit, 500)
    return rows[offset:offset + limit], len(rows)


def listed(request: web.Request, rows: list[Item], key: str) -> Item:
    """The vendor's list answer: ``{"total", "size", key: [...]}`` of one page."""
    shown, total = page(request, rows)
    return {"total": total, "size": len(shown), key: shown}
