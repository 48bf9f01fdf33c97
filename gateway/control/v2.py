"""Admin API: the vendor's v2 management paths (``/v2/{project_id}/apigw/instances/{instance_id}/...``).

Role: control plane, off the request path. Tools written for the APIG v2 API can create, change, list and
delete the run-time resources of this gateway. Everything is table driven: :data:`RESOURCES` describes
each collection (URL, snapshot collection, list key, error codes, name uniqueness, generated fields) and
one generic handler set serves them; :data:`BINDINGS` does the same for "policy x publication" bindings;
publish/offline, app-auths, app ACLs, AppCode generation, plug-in attach/detach and VPC channel members
are the special actions.

Every change builds a new document (a shallow copy of the active one with the changed collection copied)
and pushes it exactly like ``PUT /v1/snapshot`` does: validated and compiled in a worker thread, swapped
atomically, a new version id. A change that makes the document invalid answers 400 with every problem
(paths relative to the changed resource) and changes nothing. Deletes cascade the way the vendor's do
(an API takes its publications, bindings and authorizations with it). ``project_id`` and
``instance_id`` are accepted and ignored: one gateway is one instance.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.control.app import ROUTE_INSTALLERS
from gateway.control.common import (
    MASK,
    SECRET_FIELDS,
    AdminError,
    bad_param,
    commit,
    current_document,
    if_match,
    json_response,
    leftover_masks,
    mask,
    missing_param,
    new_id,
    now_iso,
    read_body,
    version_headers,
)
from gateway.process.server import Gateway
from gateway.snapshot.collections import COLLECTIONS, RELEASE_ENV_ID, RELEASE_ENV_NAME

PREFIX = "/v2/{project_id}/apigw/instances/{instance_id}"
log = logging.getLogger("gateway.control.app")
Doc = dict[str, Any]
Item = dict[str, Any]


# --- schema helpers ---------------------------------------------------------------------------------
def accepts(collection: str, name: str) -> bool:
    """Whether elements of ``collection`` may carry field ``name`` (declared, output-only, or open schema)."""
    schema = COLLECTIONS[collection][0]
    return schema.open or name in schema.fields or name in schema.output_only


def id_key(collection: str) -> str:
    return COLLECTIONS[collection][1] or "id"


def pick_field(collection: str, *candidates: str) -> str:
    """The first candidate field name the collection's schema declares (the first one for open schemas)."""
    schema = COLLECTIONS[collection][0]
    for c in candidates:
        if c in schema.fields:
            return c
    return candidates[0]


def _set_if_accepted(collection: str, item: Item, name: str, value: Any) -> None:
    if accepts(collection, name):
        item[name] = value


def gen_secret(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode().rstrip("=").replace("+", "A").replace("/", "B")[:n]


def gen_app_code() -> str:
    return base64.b64encode(os.urandom(48)).decode()  # 64 characters of [A-Za-z0-9+/]


# --- the resource table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    path: str                        # URL below PREFIX; may contain the parent's {param}
    collection: str                  # snapshot collection
    list_key: str                    # key of the list in GET responses
    id_param: str                    # URL parameter naming one element
    not_found: str                   # APIG code when the id is unknown (404)
    noun: str
    parent: tuple[str, str] | None = None  # (URL param, field) for nested collections
    name_keys: tuple[str, ...] = ()        # fields that must be unique together (last one is the name)
    dup_code: str = "APIG.3309"
    filters: tuple[str, ...] = ()
    merge_update: bool = False             # PUT merges into the element (vendor PUT sends only some fields)
    keep_on_update: tuple[str, ...] = ()   # fields a replacing PUT keeps when the body omits them
    created: str | None = "create_time"
    updated: str | None = "update_time"
    generate: Callable[[Item], None] | None = None
    decorate: Callable[[Doc, Item, dict[str, str]], Item] | None = None
    methods: frozenset[str] = frozenset({"create", "list", "get", "update", "delete"})


def _gen_app(item: Item) -> None:
    item.setdefault("app_key", new_id())
    item.setdefault("app_secret", gen_secret(32))
    _set_if_accepted("apps", item, "status", item.get("status", 1))


def _gen_sign(item: Item) -> None:
    if item.get("sign_type", "hmac") in ("hmac", None):
        item.setdefault("sign_key", gen_secret(16))
        item.setdefault("sign_secret", gen_secret(32))


def _gen_app_code(item: Item) -> None:
    if not item.get("app_code"):
        item["app_code"] = gen_app_code()


def _gen_vpc(item: Item) -> None:
    for m in item.get("members") or []:
        if isinstance(m, dict) and "id" not in m:
            m["id"] = new_id()


def _decorate_api(doc: Doc, item: Item, query: dict[str, str]) -> Item:
    out = dict(item)
    group = _find(doc, "groups", str(item.get("group_id")))
    if group is not None:
        out.setdefault("group_name", group.get("name"))
    env_id = query.get("env_id")
    pubs = [p for p in doc.get("publishes") or [] if isinstance(p, dict) and p.get("api_id") == item.get("id")]
    if env_id:
        pubs = [p for p in pubs if p.get("env_id") == env_id]
    if pubs:
        p = pubs[0]
        out.update({"run_env_id": p.get("env_id"), "run_env_name": _env_name(doc, str(p.get("env_id"))),
                    "publish_id": p.get("publish_id"), "publish_time": p.get("publish_time")})
    out["status"] = 1
    return out


RESOURCES: tuple[Resource, ...] = (
    Resource("api-groups", "groups", "groups", "group_id", "APIG.3001", "API group", name_keys=("name",),
             dup_code="APIG.3201", filters=("id", "name"), created="register_time",
             keep_on_update=("url_domains", "sl_domain", "sl_domains")),
    Resource("envs", "environments", "envs", "env_id", "APIG.3003", "environment", name_keys=("name",),
             dup_code="APIG.3205", filters=("name",), updated=None),
    Resource("env-variables", "env_variables", "variables", "env_variable_id", "APIG.3011", "environment variable",
             name_keys=("group_id", "env_id", "variable_name"), dup_code="APIG.3303",
             filters=("group_id", "env_id", "variable_name"), merge_update=True, created=None, updated=None),
    Resource("throttles", "throttles", "throttles", "throttle_id", "APIG.3005", "request throttling policy",
             name_keys=("name",), dup_code="APIG.3204", filters=("id", "name"), created="create_time", updated=None),
    Resource("throttles/{throttle_id}/throttle-specials", "special_throttles", "throttle_specials", "strategy_id",
             "APIG.3013", "excluded request throttling configuration", parent=("throttle_id", "throttle_id"),
             name_keys=("throttle_id", "object_id"), dup_code="APIG.3308", filters=("object_name",),
             merge_update=True, created="apply_time", updated=None),
    Resource("apis", "apis", "apis", "api_id", "APIG.3002", "API", name_keys=("group_id", "name"),
             dup_code="APIG.3202", filters=("id", "name", "group_id", "req_protocol", "req_method", "req_uri",
                                            "auth_type", "type"),
             created="register_time", decorate=_decorate_api),
    Resource("signs", "signs", "signs", "sign_id", "APIG.3017", "signature key", name_keys=("name",),
             dup_code="APIG.3207", filters=("id", "name"), generate=_gen_sign,
             keep_on_update=("sign_key", "sign_secret")),
    Resource("acls", "acls", "acls", "acl_id", "APIG.3006", "access control policy", name_keys=("acl_name",),
             dup_code="APIG.3206", filters=("id", "name", "acl_name", "acl_type", "entity_type"), created=None),
    Resource("apps", "apps", "apps", "app_id", "APIG.3004", "app", name_keys=("name",), dup_code="APIG.3203",
             filters=("id", "name", "status", "app_key", "creator"), generate=_gen_app, created="register_time",
             keep_on_update=("app_key", "app_secret", "status")),
    Resource("apps/{app_id}/app-codes", "app_codes", "app_codes", "app_code_id", "APIG.3082", "AppCode",
             parent=("app_id", "app_id"), name_keys=("app_code",), dup_code="APIG.3310", generate=_gen_app_code,
             updated=None, methods=frozenset({"create", "list", "get", "delete"})),
    Resource("authorizers", "authorizers", "authorizer_list", "authorizer_id", "APIG.3081", "authorizer",
             name_keys=("name",), dup_code="APIG.3211", filters=("id", "name", "type"), updated=None),
    Resource("vpc-channels", "vpc_channels", "vpc_channels", "vpc_channel_id", "APIG.3023", "VPC channel",
             name_keys=("name",), dup_code="APIG.3208", filters=("id", "name", "type"), generate=_gen_vpc,
             keep_on_update=("members",), updated=None),
    Resource("api-groups/{group_id}/gateway-responses", "responses", "responses", "response_id", "APIG.3081",
             "gateway response", parent=("group_id", "group_id"), name_keys=("group_id", "name"),
             dup_code="APIG.3216"),
    Resource("plugins", "plugins", "plugins", "plugin_id", "APIG.3007", "plug-in",
             name_keys=("plugin_name",), dup_code="APIG.3309",
             filters=("plugin_id", "plugin_name", "plugin_type", "plugin_scope")),
)


@dataclass(frozen=True)
class Binding:
    """A "policy bound to publications" collection (``{id, <policy field>, publish_id}`` elements)."""

    path: str
    collection: str
    body_field: str                 # the policy id field in the vendor's request body
    stored_fields: tuple[str, ...]  # candidates for the snapshot field naming the policy
    policy_collection: str
    policy_not_found: str
    response_key: str
    time_field: str
    not_found: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def stored(self) -> str:
        return pick_field(self.collection, *self.stored_fields)


BINDINGS: tuple[Binding, ...] = (
    Binding("throttle-bindings", "throttle_bindings", "strategy_id", ("policy_id", "strategy_id", "throttle_id"),
            "throttles", "APIG.3005", "throttle_applies", "apply_time", "APIG.3012"),
    Binding("acl-bindings", "acl_bindings", "acl_id", ("acl_id",), "acls", "APIG.3006", "acl_bindings",
            "create_time", "APIG.3010"),
    Binding("sign-bindings", "sign_bindings", "sign_id", ("sign_id",), "signs", "APIG.3017", "bindings",
            "binding_time", "APIG.3018"),
)

# (child collection, field, parent collection): deleting the parent deletes the children (vendor behaviour).
CASCADE: list[tuple[str, str, str]] = [
    ("apis", "group_id", "groups"), ("env_variables", "group_id", "groups"), ("responses", "group_id", "groups"),
    ("env_variables", "env_id", "environments"), ("publishes", "env_id", "environments"),
    ("app_auths", "env_id", "environments"),
    ("publishes", "api_id", "apis"), ("app_auths", "api_id", "apis"),
    ("special_throttles", "throttle_id", "throttles"),
    ("plugin_bindings", "plugin_id", "plugins"), ("plugin_bindings", "publish_id", "publishes"),
    ("app_codes", "app_id", "apps"), ("app_auths", "app_id", "apps"), ("app_acls", "app_id", "apps"),
    ("quota_bindings", "app_id", "apps"), ("quota_bindings", "quota_id", "quotas"),
]


def _cascade_rules() -> list[tuple[str, str, str]]:
    rules = list(CASCADE)
    for b in BINDINGS:
        rules.append((b.collection, b.stored, b.policy_collection))
        rules.append((b.collection, "publish_id", "publishes"))
    return rules


# --- document helpers ---------------------------------------------------------------------------------
def _items(doc: Doc, collection: str) -> list[Item]:
    return [x for x in doc.get(collection) or [] if isinstance(x, dict)]


def _find(doc: Doc, collection: str, key: str) -> Item | None:
    k = id_key(collection)
    for x in _items(doc, collection):
        if str(x.get(k)) == key:
            return x
    return None


def _env_name(doc: Doc, env_id: str) -> str | None:
    if env_id == RELEASE_ENV_ID:
        return RELEASE_ENV_NAME
    env = _find(doc, "environments", env_id)
    return env.get("name") if env else None


def _env_exists(doc: Doc, env_id: str) -> bool:
    return env_id == RELEASE_ENV_ID or _find(doc, "environments", env_id) is not None


def fresh(doc: Doc) -> Doc:
    """A new document sharing the unchanged collections (elements are never mutated in place)."""
    out = dict(doc)
    out.pop("version", None)  # a change gets a new version id
    return out


def set_collection(doc: Doc, collection: str, items: list[Item]) -> None:
    doc[collection] = items


def cascade_delete(doc: Doc, collection: str, keys: set[str]) -> None:
    """Remove ``keys`` from ``collection`` of ``doc`` (a :func:`fresh` copy) and everything that depends on them."""
    rules = _cascade_rules()
    work = [(collection, keys)]
    while work:
        coll, ids = work.pop()
        if not ids:
            continue
        k = id_key(coll)
        removed = [x for x in _items(doc, coll) if str(x.get(k)) in ids]
        if not removed:
            continue
        doc[coll] = [x for x in doc.get(coll) or [] if not (isinstance(x, dict) and str(x.get(k)) in ids)]
        for child, fld, parent in rules:
            if parent != coll or child not in COLLECTIONS:
                continue
            ck = COLLECTIONS[child][1]
            dependents = [x for x in _items(doc, child) if str(x.get(fld)) in ids]
            if not dependents:
                continue
            if ck is None:  # keyless collection: remove directly
                doc[child] = [x for x in doc.get(child) or [] if not (isinstance(x, dict) and str(x.get(fld)) in ids)]
            else:
                work.append((child, {str(x.get(ck)) for x in dependents}))


def _present(item: Item) -> Item:
    return mask(item)


def _page(request: web.Request, items: list[Item]) -> tuple[list[Item], int]:
    try:
        offset = max(0, int(request.query.get("offset", "0")))
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise bad_param("offset/limit", "must be integers") from None
    if limit <= 0:
        limit = 20
    limit = min(limit, 500)
    return items[offset:offset + limit], len(items)


# --- the machinery ------------------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class V2:
    """Handlers bound to one gateway; writes are serialised by one lock."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.lock: asyncio.Lock = gateway.services.extras.setdefault("admin_lock", asyncio.Lock())

    # every handler goes through here: AdminError -> vendor error body
    def wrap(self, fn: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except AdminError as err:
                return err.response()

        return handler

    def doc(self) -> Doc:
        return current_document(self.gw)

    async def apply(self, request: web.Request, change: Callable[[Doc], str | None]) -> dict[str, str]:
        """Run ``change`` on a fresh copy of the active document and push it; returns the ETag header."""
        async with self.lock:
            rt = self.gw.runtime
            expected = if_match(request)
            if expected is None and rt is not None:
                expected = rt.version
            new = fresh(self.doc())
            prefix = change(new)
            runtime = await commit(self.gw, new, expected, prefix)
        log.info("admin change %s %s -> snapshot %s", request.method, request.path, runtime.version)
        return version_headers(runtime)

    # --- generic CRUD -------------------------------------------------------------------------------
    def parent_check(self, res: Resource, request: web.Request) -> str | None:
        if res.parent is None:
            return None
        param, fld = res.parent
        value = request.match_info[param]
        doc = self.doc()
        if fld == "group_id" and _find(doc, "groups", value) is None:
            raise AdminError(404, "APIG.3001", f"The API group does not exist,id:{value}")
        if fld == "throttle_id" and _find(doc, "throttles", value) is None:
            raise AdminError(404, "APIG.3005", f"The request throttling policy does not exist,id:{value}")
        if fld == "app_id" and _find(doc, "apps", value) is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{value}")
        return value

    def _lookup(self, res: Resource, request: web.Request, doc: Doc) -> tuple[int, Item]:
        key = request.match_info[res.id_param]
        k = id_key(res.collection)
        for i, x in enumerate(doc.get(res.collection) or []):
            if isinstance(x, dict) and str(x.get(k)) == key and (
                    res.parent is None or str(x.get(res.parent[1])) == request.match_info[res.parent[0]]):
                return i, x
        if res.collection == "environments" and key == RELEASE_ENV_ID:
            raise AdminError(400, "APIG.2011", "The RELEASE environment cannot be changed or deleted.")
        raise AdminError(404, res.not_found, f"The {res.noun} does not exist,id:{key}")

    def _check_unique(self, res: Resource, doc: Doc, item: Item, self_key: str | None) -> None:
        if not res.name_keys:
            return
        k = id_key(res.collection)
        want = tuple(str(item.get(n, "")).lower() if i == len(res.name_keys) - 1 else str(item.get(n))
                     for i, n in enumerate(res.name_keys))
        if not item.get(res.name_keys[-1]):
            return
        for x in _items(doc, res.collection):
            if self_key is not None and str(x.get(k)) == self_key:
                continue
            got = tuple(str(x.get(n, "")).lower() if i == len(res.name_keys) - 1 else str(x.get(n))
                        for i, n in enumerate(res.name_keys))
            if got == want:
                last = res.name_keys[-1]  # a secret (an AppCode) is never echoed back
                shown = MASK if last in SECRET_FIELDS else item.get(last)
                raise AdminError(400, res.dup_code, f"The {res.noun} name already exists: {shown}")

    def _clean_body(self, res: Resource, body: Item) -> Item:
        return {k: v for k, v in body.items() if k != id_key(res.collection)}

    @staticmethod
    def _no_masks(item: Item) -> None:
        masked = leftover_masks(item)
        if masked:
            raise AdminError(400, "APIG.2012", "Invalid parameter value: a masked secret was sent",
                             problems=masked)

    def crud(self, res: Resource) -> list[tuple[str, str, Handler]]:
        base = f"{PREFIX}/{res.path}"
        one = f"{base}/{{{res.id_param}}}"
        k = id_key(res.collection)

        async def create(request: web.Request) -> web.StreamResponse:
            parent = self.parent_check(res, request)
            body = await read_body(request)
            item = self._clean_body(res, body)
            item[k] = new_id()
            if res.parent is not None:
                item[res.parent[1]] = parent
            if res.generate:
                res.generate(item)
            self._no_masks(item)
            now = now_iso()
            for f in (res.created, res.updated):
                if f:
                    _set_if_accepted(res.collection, item, f, now)
            out: dict[str, Any] = {}

            def change(doc: Doc) -> str:
                self._check_unique(res, doc, item, None)
                items = list(doc.get(res.collection) or [])
                items.append(item)
                doc[res.collection] = items
                out["index"] = len(items) - 1
                return f"{res.collection}[{len(items) - 1}]"

            headers = await self.apply(request, change)
            shown = dict(item)
            if res.collection == "apps":  # the one time the generated secret is shown (documented)
                return json_response(shown, status=201, headers=headers)
            return json_response(_present(shown), status=201, headers=headers)

        async def list_(request: web.Request) -> web.StreamResponse:
            parent = self.parent_check(res, request)
            doc = self.doc()
            items = _items(doc, res.collection)
            if res.collection == "environments" and _find(doc, "environments", RELEASE_ENV_ID) is None:
                items = [{"id": RELEASE_ENV_ID, "name": RELEASE_ENV_NAME, "remark": "Production environment"},
                         *items]
            if parent is not None and res.parent is not None:
                items = [x for x in items if str(x.get(res.parent[1])) == parent]
            precise = request.query.get("precise_search", "")
            for f in res.filters:
                want = request.query.get(f)
                if want is None or want == "":
                    continue
                key = k if f in ("id", "plugin_id") else f
                if key in ("name", "acl_name", "plugin_name", "variable_name") and key not in precise:
                    items = [x for x in items if want.lower() in str(x.get(key, "")).lower()]
                else:
                    items = [x for x in items if str(x.get(key)) == want]
            if res.collection == "apis" and request.query.get("env_id"):
                env = request.query["env_id"]
                published = {str(p.get("api_id")) for p in _items(doc, "publishes") if p.get("env_id") == env}
                items = [x for x in items if str(x.get("id")) in published]
            page, total = _page(request, items)
            query = dict(request.query)
            shown = [_present(res.decorate(doc, x, query) if res.decorate else x) for x in page]
            return json_response({"total": total, "size": len(shown), res.list_key: shown},
                                 headers=version_headers(self.gw.runtime))

        async def get(request: web.Request) -> web.StreamResponse:
            self.parent_check(res, request)
            doc = self.doc()
            if res.collection == "environments" and request.match_info[res.id_param] == RELEASE_ENV_ID:
                return json_response({"id": RELEASE_ENV_ID, "name": RELEASE_ENV_NAME})
            _, item = self._lookup(res, request, doc)
            shown = res.decorate(doc, item, dict(request.query)) if res.decorate else item
            return json_response(_present(shown), headers=version_headers(self.gw.runtime))

        async def update(request: web.Request) -> web.StreamResponse:
            self.parent_check(res, request)
            body = await read_body(request)
            _, old = self._lookup(res, request, self.doc())
            key = str(old[k])
            if res.merge_update:
                item = {**old, **self._clean_body(res, body)}
            else:
                item = self._clean_body(res, body)
                for f in (*res.keep_on_update, *SECRET_FIELDS, res.created, "register_time", "create_time"):
                    if f and f in old and f not in item:
                        item[f] = old[f]
                if res.parent is not None:
                    item[res.parent[1]] = old.get(res.parent[1])
            for f, v in list(item.items()):  # a masked secret sent back keeps the stored one
                if f in SECRET_FIELDS and v == "******" and f in old:
                    item[f] = old[f]
            item[k] = old[k]
            self._no_masks(item)
            if res.updated:
                _set_if_accepted(res.collection, item, res.updated, now_iso())

            def change(doc: Doc) -> str:
                self._check_unique(res, doc, item, key)
                items = list(doc.get(res.collection) or [])
                for i, x in enumerate(items):
                    if isinstance(x, dict) and str(x.get(k)) == key:
                        items[i] = item
                        doc[res.collection] = items
                        return f"{res.collection}[{i}]"
                raise AdminError(404, res.not_found, f"The {res.noun} does not exist,id:{key}")

            headers = await self.apply(request, change)
            return json_response(_present(item), headers=headers)

        async def delete(request: web.Request) -> web.StreamResponse:
            self.parent_check(res, request)
            _, old = self._lookup(res, request, self.doc())
            key = str(old[k])

            def change(doc: Doc) -> None:
                cascade_delete(doc, res.collection, {key})
                return None

            headers = await self.apply(request, change)
            return web.Response(status=204, headers=headers)

        routes: list[tuple[str, str, Handler]] = []
        if "create" in res.methods:
            routes.append(("POST", base, create))
        if "list" in res.methods:
            routes.append(("GET", base, list_))
        if "get" in res.methods:
            routes.append(("GET", one, get))
        if "update" in res.methods:
            routes.append(("PUT", one, update))
        if "delete" in res.methods:
            routes.append(("DELETE", one, delete))
        return routes

    # --- bindings -------------------------------------------------------------------------------------
    def _publication(self, doc: Doc, publish_id: str) -> Item:
        pub = _find(doc, "publishes", publish_id)
        if pub is None:
            raise AdminError(404, "APIG.3015", f"The API publication record does not exist,id:{publish_id}")
        return pub

    def _binding_view(self, b: Binding, doc: Doc, row: Item) -> Item:
        pub = _find(doc, "publishes", str(row.get("publish_id"))) or {}
        api = _find(doc, "apis", str(pub.get("api_id"))) or {}
        policy = _find(doc, b.policy_collection, str(row.get(b.stored))) or {}
        out = dict(row)
        out.update({b.body_field: row.get(b.stored), "api_id": pub.get("api_id"), "api_name": api.get("name"),
                    "env_id": pub.get("env_id"), "env_name": _env_name(doc, str(pub.get("env_id"))),
                    "group_id": api.get("group_id")})
        pname = policy.get("name") or policy.get("acl_name")
        if pname is not None:
            out.setdefault("policy_name", pname)
        return out

    def bindings(self, b: Binding) -> list[tuple[str, str, Handler]]:
        base = f"{PREFIX}/{b.path}"

        async def create(request: web.Request) -> web.StreamResponse:
            body = await read_body(request)
            policy_id = body.get(b.body_field)
            publish_ids = body.get("publish_ids")
            if not isinstance(policy_id, str) or not policy_id:
                raise missing_param(b.body_field)
            if not isinstance(publish_ids, list) or not publish_ids or \
                    not all(isinstance(p, str) for p in publish_ids):
                raise missing_param("publish_ids")
            doc = self.doc()
            if _find(doc, b.policy_collection, policy_id) is None:
                raise AdminError(404, b.policy_not_found, f"The policy does not exist,id:{policy_id}")
            for pid in publish_ids:
                self._publication(doc, pid)
            now = now_iso()
            rows: list[Item] = []

            def change(doc: Doc) -> str | None:
                items = list(doc.get(b.collection) or [])
                existing = {(str(x.get(b.stored)), str(x.get("publish_id"))) for x in _items(doc, b.collection)}
                for pid in dict.fromkeys(publish_ids):
                    if (policy_id, pid) in existing:
                        continue
                    row: Item = {"id": new_id(), b.stored: policy_id, "publish_id": pid}
                    _set_if_accepted(b.collection, row, b.time_field, now)
                    items.append(row)
                    rows.append(row)
                doc[b.collection] = items
                return None

            headers = await self.apply(request, change)
            doc = self.doc()
            return json_response({b.response_key: [_present(self._binding_view(b, doc, r)) for r in rows]},
                                 status=201, headers=headers)

        async def delete(request: web.Request) -> web.StreamResponse:
            key = request.match_info["binding_id"]
            if _find(self.doc(), b.collection, key) is None:
                raise AdminError(404, b.not_found, f"The binding record does not exist,id:{key}")

            def change(doc: Doc) -> None:
                cascade_delete(doc, b.collection, {key})

            headers = await self.apply(request, change)
            return web.Response(status=204, headers=headers)

        async def bound_apis(request: web.Request) -> web.StreamResponse:
            doc = self.doc()
            policy_id = request.query.get(b.body_field) or request.query.get("throttle_id") or ""
            if not policy_id:
                raise missing_param(b.body_field)
            rows = [self._binding_view(b, doc, r) for r in _items(doc, b.collection)
                    if str(r.get(b.stored)) == policy_id]
            if request.query.get("env_id"):
                rows = [r for r in rows if r.get("env_id") == request.query["env_id"]]
            page, total = _page(request, rows)
            return json_response({"total": total, "size": len(page), "apis": [_present(r) for r in page]})

        async def bound_policies(request: web.Request) -> web.StreamResponse:
            doc = self.doc()
            api_id = request.query.get("api_id")
            if not api_id:
                raise missing_param("api_id")
            rows = [self._binding_view(b, doc, r) for r in _items(doc, b.collection)]
            rows = [r for r in rows if r.get("api_id") == api_id]
            if request.query.get("env_id"):
                rows = [r for r in rows if r.get("env_id") == request.query["env_id"]]
            policies = []
            for r in rows:
                pol = _find(doc, b.policy_collection, str(r.get(b.stored)))
                if pol is not None:
                    policies.append({**pol, "bind_id": r.get("id"), "env_id": r.get("env_id"),
                                     "env_name": r.get("env_name")})
            page, total = _page(request, policies)
            key = {"throttle_bindings": "throttles", "acl_bindings": "acls", "sign_bindings": "bindings"}[b.collection]
            return json_response({"total": total, "size": len(page), key: [_present(p) for p in page]})

        policy_word = {"throttle_bindings": "binded-throttles", "acl_bindings": "binded-acls",
                       "sign_bindings": "binded-signs"}[b.collection]
        routes: list[tuple[str, str, Handler]] = []
        if b.collection in ("throttle_bindings", "acl_bindings"):
            routes.append(("PUT", base, self.batch_delete(b.collection, b.collection, "bind_id", b.not_found,
                                                          "binding record")))
        return [*routes, ("POST", base, create), ("DELETE", f"{base}/{{binding_id}}", delete),
                ("GET", f"{base}/binded-apis", bound_apis), ("GET", f"{base}/{policy_word}", bound_policies)]

    def batch_delete(self, collection: str, body_key: str, id_name: str, not_found: str, noun: str) -> Handler:
        """``PUT <collection>?action=delete`` with ``{body_key: [ids]}`` (vendor batch unbind/delete)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.query.get("action") != "delete":
                raise AdminError(400, "APIG.2011", 'parameter action should be "delete"')
            body = await read_body(request)
            ids = body.get(body_key)
            if not isinstance(ids, list) or not ids or not all(isinstance(x, str) for x in ids):
                raise missing_param(body_key)
            known = {str(x.get(id_key(collection))) for x in _items(self.doc(), collection)}
            failure = [{id_name: x, "error_code": not_found, "error_msg": f"The {noun} does not exist"}
                       for x in dict.fromkeys(ids) if x not in known]
            doomed = {x for x in ids if x in known}

            def change(doc: Doc) -> None:
                cascade_delete(doc, collection, doomed)

            headers = await self.apply(request, change) if doomed else {}
            return json_response({"failure": failure, "success_count": len(doomed)}, headers=headers)

        return handler

    # --- publish / offline ----------------------------------------------------------------------------
    def _publish_change(self, doc: Doc, api_id: str, env_id: str, action: str, remark: str | None,
                        out: list[Item]) -> None:
        pubs = list(doc.get("publishes") or [])
        existing = [p for p in pubs if isinstance(p, dict) and p.get("api_id") == api_id and p.get("env_id") == env_id]
        api = _find(doc, "apis", api_id) or {}
        if action == "online":
            record: Item = {"publish_id": existing[0]["publish_id"] if existing else new_id(), "api_id": api_id,
                            "env_id": env_id, "version_id": new_id(), "publish_time": now_iso()}
            if remark:
                record["remark"] = remark
            if existing:
                pubs[pubs.index(existing[0])] = record
            else:
                pubs.append(record)
            doc["publishes"] = pubs
            out.append({**record, "api_name": api.get("name")})
        else:
            if not existing:
                raise AdminError(404, "APIG.3015", f"The API publication record does not exist,api:{api_id}")
            out.append({**existing[0], "api_name": api.get("name")})
            cascade_delete(doc, "publishes", {str(p["publish_id"]) for p in existing})

    def _check_publish_args(self, doc: Doc, action: Any, env_id: Any) -> tuple[str, str]:
        if action not in ("online", "offline"):
            raise AdminError(400, "APIG.2011", "Invalid parameter value,parameterName:action. "
                             "Please refer to the support documentation")
        if not isinstance(env_id, str) or not env_id:
            raise missing_param("env_id")
        if not _env_exists(doc, env_id):
            raise AdminError(404, "APIG.3003", f"The environment does not exist,id:{env_id}")
        return action, env_id

    async def api_action(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        doc = self.doc()
        action, env_id = self._check_publish_args(doc, body.get("action"), body.get("env_id"))
        api_id = body.get("api_id")
        if not isinstance(api_id, str) or not api_id:
            raise missing_param("api_id")
        if _find(doc, "apis", api_id) is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
        out: list[Item] = []

        def change(doc: Doc) -> str | None:
            self._publish_change(doc, api_id, env_id, action, body.get("remark"), out)
            return None

        headers = await self.apply(request, change)
        return json_response(out[0], status=201, headers=headers)

    async def api_publish_batch(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        doc = self.doc()
        action, env_id = self._check_publish_args(doc, request.query.get("action"), body.get("env_id"))
        apis = body.get("apis")
        group_id = body.get("group_id")
        if apis is None and not group_id:
            raise missing_param("apis")
        if apis is None:
            api_ids = [str(a.get("id")) for a in _items(doc, "apis") if a.get("group_id") == group_id]
        elif isinstance(apis, list) and all(isinstance(a, str) for a in apis):
            api_ids = list(dict.fromkeys(apis))
        else:
            raise bad_param("apis")
        if len(api_ids) > 1000:
            raise bad_param("apis", "at most 1000 APIs at a time", "APIG.2003")
        success: list[Item] = []
        failure: list[Item] = []

        def change(doc: Doc) -> str | None:
            success.clear()
            failure.clear()
            for api_id in api_ids:
                api = _find(doc, "apis", api_id)
                if api is None:
                    failure.append({"api_id": api_id, "error_code": "APIG.3002",
                                    "error_msg": f"Api {api_id} not found"})
                    continue
                try:
                    self._publish_change(doc, api_id, env_id, action, body.get("remark"), success)
                except AdminError as err:
                    failure.append({"api_id": api_id, "api_name": api.get("name"), "error_code": err.code,
                                    "error_msg": err.msg})
            return None

        headers = await self.apply(request, change)
        return json_response({"success": success, "failure": failure}, headers=headers)

    async def api_publish_history(self, request: web.Request) -> web.StreamResponse:
        doc = self.doc()
        api_id = request.match_info["api_id"]
        if _find(doc, "apis", api_id) is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
        rows = [{"version_id": p.get("version_id") or p.get("publish_id"), "version_no": p.get("version_id"),
                 "api_id": api_id, "env_id": p.get("env_id"), "env_name": _env_name(doc, str(p.get("env_id"))),
                 "remark": p.get("remark"), "publish_time": p.get("publish_time"), "status": 1}
                for p in _items(doc, "publishes") if p.get("api_id") == api_id]
        env_id = request.query.get("env_id")
        if env_id:
            rows = [r for r in rows if r["env_id"] == env_id]
        page, total = _page(request, rows)
        return json_response({"total": total, "size": len(page), "api_versions": page})

    async def api_runtime(self, request: web.Request) -> web.StreamResponse:
        doc = self.doc()
        api_id = request.match_info["api_id"]
        env_id = request.query.get("env_id") or RELEASE_ENV_ID
        api = _find(doc, "apis", api_id)
        pub = next((p for p in _items(doc, "publishes") if p.get("api_id") == api_id and p.get("env_id") == env_id),
                   None)
        if api is None or pub is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist or is not published,id:{api_id}")
        out = {**api, "run_env_id": env_id, "run_env_name": _env_name(doc, env_id),
               "publish_id": pub.get("publish_id"), "publish_time": pub.get("publish_time")}
        return json_response(_present(out))

    # --- app authorizations, app ACL, AppCode auto-generation -------------------------------------------
    async def app_auths_create(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        doc = self.doc()
        env_id = body.get("env_id")
        app_ids, api_ids = body.get("app_ids"), body.get("api_ids")
        if not isinstance(env_id, str) or not env_id:
            raise missing_param("env_id")
        for name, value in (("app_ids", app_ids), ("api_ids", api_ids)):
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise missing_param(name)
        if not _env_exists(doc, env_id):
            raise AdminError(404, "APIG.3003", f"The environment does not exist,id:{env_id}")
        for a in app_ids:  # type: ignore[union-attr]
            if _find(doc, "apps", a) is None:
                raise AdminError(404, "APIG.3004", f"The app does not exist,id:{a}")
        for a in api_ids:  # type: ignore[union-attr]
            if _find(doc, "apis", a) is None:
                raise AdminError(404, "APIG.3002", f"The API does not exist,id:{a}")
        rows: list[Item] = []
        now = now_iso()

        def change(doc: Doc) -> str | None:
            items = list(doc.get("app_auths") or [])
            have = {(x.get("app_id"), x.get("api_id"), x.get("env_id")) for x in _items(doc, "app_auths")}
            for app in app_ids:  # type: ignore[union-attr]
                for api in api_ids:  # type: ignore[union-attr]
                    if (app, api, env_id) in have:
                        continue
                    row: Item = {"id": new_id(), "app_id": app, "api_id": api, "env_id": env_id}
                    _set_if_accepted("app_auths", row, "auth_time", now)
                    items.append(row)
                    rows.append(row)
            doc["app_auths"] = items
            return None

        headers = await self.apply(request, change)
        shown = [{**r, "auth_result": {"status": "SUCCESS"}, "auth_role": "PROVIDER", "auth_tunnel": "NORMAL"}
                 for r in rows]
        return json_response({"auths": shown}, status=201, headers=headers)

    async def app_auths_delete(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["app_auth_id"]
        if _find(self.doc(), "app_auths", key) is None:
            raise AdminError(404, "APIG.3009", f"The app authorization record does not exist,id:{key}")

        def change(doc: Doc) -> None:
            cascade_delete(doc, "app_auths", {key})

        headers = await self.apply(request, change)
        return web.Response(status=204, headers=headers)

    async def app_auths_list(self, request: web.Request) -> web.StreamResponse:
        doc = self.doc()
        rows = _items(doc, "app_auths")
        for f in ("app_id", "api_id", "env_id"):
            if request.query.get(f):
                rows = [r for r in rows if r.get(f) == request.query[f]]
        out = []
        for r in rows:
            api = _find(doc, "apis", str(r.get("api_id"))) or {}
            app = _find(doc, "apps", str(r.get("app_id"))) or {}
            out.append({**r, "api_name": api.get("name"), "app_name": app.get("name"),
                        "env_name": _env_name(doc, str(r.get("env_id"))), "group_id": api.get("group_id")})
        page, total = _page(request, out)
        key = "apps" if request.path.endswith("binded-apps") else "auths"
        return json_response({"total": total, "size": len(page), key: [_present(x) for x in page]})

    async def app_acl(self, request: web.Request) -> web.StreamResponse:
        app_id = request.match_info["app_id"]
        doc = self.doc()
        if _find(doc, "apps", app_id) is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
        current = next((x for x in _items(doc, "app_acls") if x.get("app_id") == app_id), None)
        if request.method == "GET":
            return json_response(current or {"app_id": app_id, "app_acl_type": None, "app_acl_values": []})
        if request.method == "DELETE":
            def remove(doc: Doc) -> None:
                doc["app_acls"] = [x for x in doc.get("app_acls") or []
                                   if not (isinstance(x, dict) and x.get("app_id") == app_id)]

            headers = await self.apply(request, remove)
            return web.Response(status=204, headers=headers)
        body = await read_body(request)
        if body.get("app_acl_type") not in ("PERMIT", "DENY"):
            raise bad_param("app_acl_type")
        values = body.get("app_acl_values")
        if not isinstance(values, list) or not values:
            raise missing_param("app_acl_values")
        row = {"app_id": app_id, "app_acl_type": body["app_acl_type"], "app_acl_values": values}

        def put(doc: Doc) -> str:
            items = [x for x in doc.get("app_acls") or [] if not (isinstance(x, dict) and x.get("app_id") == app_id)]
            items.append(row)
            doc["app_acls"] = items
            return f"app_acls[{len(items) - 1}]"

        headers = await self.apply(request, put)
        return json_response(row, headers=headers)

    async def app_code_generate(self, request: web.Request) -> web.StreamResponse:
        app_id = request.match_info["app_id"]
        if _find(self.doc(), "apps", app_id) is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
        row: Item = {"id": new_id(), "app_id": app_id, "app_code": gen_app_code()}
        _set_if_accepted("app_codes", row, "create_time", now_iso())

        def change(doc: Doc) -> str:
            items = list(doc.get("app_codes") or [])
            items.append(row)
            doc["app_codes"] = items
            return f"app_codes[{len(items) - 1}]"

        headers = await self.apply(request, change)
        return json_response(row, status=201, headers=headers)

    async def app_secret_reset(self, request: web.Request) -> web.StreamResponse:
        app_id = request.match_info["app_id"]
        old = _find(self.doc(), "apps", app_id)
        if old is None:
            raise AdminError(404, "APIG.3004", f"The app does not exist,id:{app_id}")
        body = await read_body(request, required=False)
        secret = body.get("app_secret") or gen_secret(32)
        item = {**old, "app_secret": secret}
        _set_if_accepted("apps", item, "update_time", now_iso())

        def change(doc: Doc) -> str:
            items = list(doc.get("apps") or [])
            i = next(i for i, x in enumerate(items) if isinstance(x, dict) and str(x.get("id")) == app_id)
            items[i] = item
            doc["apps"] = items
            return f"apps[{i}]"

        headers = await self.apply(request, change)
        return json_response(item, status=201, headers=headers)

    # --- plug-in attach / detach ------------------------------------------------------------------------
    async def plugin_attach(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        doc = self.doc()
        env_id = body.get("env_id")
        if not isinstance(env_id, str) or not env_id:
            raise missing_param("env_id")
        plugin_ids: Any
        api_ids: Any
        if "plugin_id" in request.match_info:
            plugin_ids = [request.match_info["plugin_id"]]
            api_ids = body.get("api_ids")
            list_name = "api_ids"
        else:
            api_ids = [request.match_info["api_id"]]
            plugin_ids = body.get("plugin_ids")
            list_name = "plugin_ids"
        given = api_ids if list_name == "api_ids" else plugin_ids
        if not isinstance(given, list) or not given or not all(isinstance(x, str) for x in given):
            raise missing_param(list_name)
        pairs: list[tuple[str, str]] = []  # (plugin_id, publish_id)
        for pl in plugin_ids:
            if _find(doc, "plugins", pl) is None:
                raise AdminError(404, "APIG.3007", f"The plug-in does not exist,id:{pl}")
            for api in api_ids:
                if _find(doc, "apis", api) is None:
                    raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api}")
                pub = next((p for p in _items(doc, "publishes")
                            if p.get("api_id") == api and p.get("env_id") == env_id), None)
                if pub is None:
                    raise AdminError(409, "APIG.3707", "Only published APIs can be bound with plug-ins.")
                pairs.append((pl, str(pub["publish_id"])))
        detach = request.method == "PUT"
        rows: list[Item] = []
        now = now_iso()

        def change(doc: Doc) -> str | None:
            items = list(doc.get("plugin_bindings") or [])
            if detach:
                doomed = {str(x.get("id")) for x in _items(doc, "plugin_bindings")
                          if (str(x.get("plugin_id")), str(x.get("publish_id"))) in set(pairs)}
                cascade_delete(doc, "plugin_bindings", doomed)
                return None
            have = {(str(x.get("plugin_id")), str(x.get("publish_id"))) for x in _items(doc, "plugin_bindings")}
            # one plug-in per type per (API, environment): a later binding replaces (spec 02 §8.1)
            type_of = {str(p.get(id_key("plugins"))): p.get("plugin_type") for p in _items(doc, "plugins")}
            replaced = {(type_of.get(pl), pid) for pl, pid in pairs}
            items = [x for x in items if (str(x.get("plugin_id")), str(x.get("publish_id"))) in set(pairs)
                     or (type_of.get(str(x.get("plugin_id"))), str(x.get("publish_id"))) not in replaced]
            for pl, pid in pairs:
                if (pl, pid) in have:
                    continue
                row: Item = {"id": new_id(), "plugin_id": pl, "publish_id": pid}
                _set_if_accepted("plugin_bindings", row, "attached_time", now)
                items.append(row)
                rows.append(row)
            doc["plugin_bindings"] = items
            return None

        headers = await self.apply(request, change)
        if detach:
            return web.Response(status=204, headers=headers)
        doc = self.doc()
        shown = []
        for r in rows:
            pub = _find(doc, "publishes", str(r["publish_id"])) or {}
            plugin = _find(doc, "plugins", str(r["plugin_id"])) or {}
            api = _find(doc, "apis", str(pub.get("api_id"))) or {}
            shown.append({"plugin_attach_id": r["id"], "plugin_id": r["plugin_id"],
                          "plugin_name": plugin.get("plugin_name"), "plugin_type": plugin.get("plugin_type"),
                          "plugin_scope": plugin.get("plugin_scope"), "env_id": env_id,
                          "env_name": _env_name(doc, env_id), "api_id": pub.get("api_id"),
                          "api_name": api.get("name"), "attached_time": now})
        return json_response({"attached_plugins": shown}, status=201, headers=headers)

    async def plugin_attached(self, request: web.Request) -> web.StreamResponse:
        doc = self.doc()
        rows = []
        for r in _items(doc, "plugin_bindings"):
            pub = _find(doc, "publishes", str(r.get("publish_id"))) or {}
            if "plugin_id" in request.match_info and r.get("plugin_id") != request.match_info["plugin_id"]:
                continue
            if "api_id" in request.match_info and pub.get("api_id") != request.match_info["api_id"]:
                continue
            if request.query.get("env_id") and pub.get("env_id") != request.query["env_id"]:
                continue
            plugin = _find(doc, "plugins", str(r.get("plugin_id"))) or {}
            api = _find(doc, "apis", str(pub.get("api_id"))) or {}
            rows.append({"plugin_attach_id": r.get("id"), "plugin_id": r.get("plugin_id"),
                         "plugin_name": plugin.get("plugin_name"), "plugin_type": plugin.get("plugin_type"),
                         "env_id": pub.get("env_id"), "env_name": _env_name(doc, str(pub.get("env_id"))),
                         "api_id": pub.get("api_id"), "api_name": api.get("name")})
        page, total = _page(request, rows)
        key = "plugins" if "api_id" in request.match_info else "apis"
        return json_response({"total": total, "size": len(page), key: page})

    # --- VPC channel members ----------------------------------------------------------------------------
    def _channel(self, request: web.Request) -> tuple[int, Item]:
        cid = request.match_info["vpc_channel_id"]
        for i, x in enumerate(self.doc().get("vpc_channels") or []):
            if isinstance(x, dict) and str(x.get("id")) == cid:
                return i, x
        raise AdminError(404, "APIG.3023", f"The VPC channel does not exist,id:{cid}")

    async def members(self, request: web.Request) -> web.StreamResponse:
        _, channel = self._channel(request)
        cid = str(channel["id"])
        current = [m for m in channel.get("members") or [] if isinstance(m, dict)]
        if request.method == "GET":
            page, total = _page(request, current)
            return json_response({"total": total, "size": len(page), "members": page})
        if request.method == "DELETE":
            mid = request.match_info["member_id"]
            if not any(str(m.get("id")) == mid for m in current):
                raise AdminError(404, "APIG.3024", f"The cloud server does not exist,id:{mid}")
            new_members = [m for m in current if str(m.get("id")) != mid]
        else:
            body = await read_body(request)
            given = body.get("members")
            if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
                raise missing_param("members")
            added = [{**m, "id": m.get("id") or new_id()} for m in given]
            if request.method == "PUT":  # replace all members
                new_members = added
            else:  # POST: add, or update the member with the same host/port
                def ident(m: Item) -> tuple[Any, Any]:
                    return (m.get("host") or m.get("ecs_id"), m.get("port"))

                keys = {ident(m) for m in added}
                kept = [m for m in current if ident(m) not in keys]
                old_ids = {ident(m): m.get("id") for m in current}
                added = [{**m, "id": old_ids.get(ident(m)) or m["id"]} for m in added]
                new_members = kept + added

        def change(doc: Doc) -> str:
            items = list(doc.get("vpc_channels") or [])
            for i, x in enumerate(items):
                if isinstance(x, dict) and str(x.get("id")) == cid:
                    items[i] = {**x, "members": new_members}
                    doc["vpc_channels"] = items
                    return f"vpc_channels[{i}]"
            raise AdminError(404, "APIG.3023", f"The VPC channel does not exist,id:{cid}")

        headers = await self.apply(request, change)
        if request.method == "DELETE":
            return web.Response(status=204, headers=headers)
        status = 201 if request.method == "POST" else 200
        return json_response({"total": len(new_members), "size": len(new_members), "members": new_members},
                             status=status, headers=headers)

    # --- route table --------------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Handler]]:
        p = PREFIX
        special: list[tuple[str, str, Handler]] = [
            ("POST", f"{p}/apis/action", self.api_action),
            ("POST", f"{p}/apis/publish", self.api_publish_batch),
            ("GET", f"{p}/apis/publish/{{api_id}}", self.api_publish_history),
            ("GET", f"{p}/apis/runtime/{{api_id}}", self.api_runtime),
            ("POST", f"{p}/app-auths", self.app_auths_create),
            ("DELETE", f"{p}/app-auths/{{app_auth_id}}", self.app_auths_delete),
            ("GET", f"{p}/app-auths/binded-apis", self.app_auths_list),
            ("GET", f"{p}/app-auths/binded-apps", self.app_auths_list),
            ("PUT", f"{p}/apps/{{app_id}}/app-acl", self.app_acl),
            ("GET", f"{p}/apps/{{app_id}}/app-acl", self.app_acl),
            ("DELETE", f"{p}/apps/{{app_id}}/app-acl", self.app_acl),
            ("PUT", f"{p}/apps/{{app_id}}/app-codes", self.app_code_generate),
            ("PUT", f"{p}/apps/secret/{{app_id}}", self.app_secret_reset),
            ("POST", f"{p}/plugins/{{plugin_id}}/attach", self.plugin_attach),
            ("PUT", f"{p}/plugins/{{plugin_id}}/detach", self.plugin_attach),
            ("POST", f"{p}/apis/{{api_id}}/plugins/attach", self.plugin_attach),
            ("PUT", f"{p}/apis/{{api_id}}/plugins/detach", self.plugin_attach),
            ("GET", f"{p}/plugins/{{plugin_id}}/attached-apis", self.plugin_attached),
            ("GET", f"{p}/apis/{{api_id}}/attached-plugins", self.plugin_attached),
            ("GET", f"{p}/vpc-channels/{{vpc_channel_id}}/members", self.members),
            ("POST", f"{p}/vpc-channels/{{vpc_channel_id}}/members", self.members),
            ("PUT", f"{p}/vpc-channels/{{vpc_channel_id}}/members", self.members),
            ("DELETE", f"{p}/vpc-channels/{{vpc_channel_id}}/members/{{member_id}}", self.members),
        ]
        special.append(("PUT", f"{p}/acls", self.batch_delete("acls", "acls", "acl_id", "APIG.3006",
                                                             "access control policy")))
        for b in BINDINGS:
            special.extend(self.bindings(b))
        for res in RESOURCES:
            special.extend(self.crud(res))
        return special


def install(app: web.Application, gateway: Gateway) -> None:
    v2 = V2(gateway)
    for method, path, handler in v2.routes():
        app.router.add_route(method, path, v2.wrap(handler))


ROUTE_INSTALLERS.append(install)
