"""The v2 resource tables: what each management collection is, declared once, as data.

Role: control plane, off the request path. :data:`RESOURCES` describes each collection served by the
generic CRUD handlers (:mod:`gateway.control.v2.crud`): its URL, snapshot collection, list key, error
codes, name uniqueness, generated fields, and the hooks that make it special (generated secrets, a built-in
element, a list filter, a decorated view). The handlers never branch on a collection's name: like APISIX's
``resource.new({...})``, behaviour is a field of the resource. :data:`BINDINGS` does the same for the
"policy x publication" bindings, and :data:`REFERENCES` declares every reference between collections once:
it drives the parent checks of nested URLs and :func:`cascade_delete` (the vendor's delete cascades).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass

from gateway.control.common import new_id
from gateway.control.v2.document import (
    Doc,
    Item,
    domain_id,
    env_name,
    find,
    id_key,
    items,
    keyed,
    pick_field,
    set_if_accepted,
)
from gateway.control.v2.versions import write_api
from gateway.core.settings import Settings
from gateway.pipeline.chain import COLLECTIONS
from gateway.snapshot import delta
from gateway.snapshot.collections import RELEASE_ENV_ID, RELEASE_ENV_NAME

Query = dict[str, str]


# --- references, declared once ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """``child.field`` names an element of ``parent``; deleting the parent deletes the child (vendor)."""

    child: str
    field: str
    parent: str


REFERENCES: tuple[Ref, ...] = (
    Ref("apis", "group_id", "groups"), Ref("env_variables", "group_id", "groups"),
    Ref("responses", "group_id", "groups"),
    Ref("env_variables", "env_id", "environments"), Ref("publishes", "env_id", "environments"),
    Ref("app_auths", "env_id", "environments"),
    Ref("publishes", "api_id", "apis"), Ref("app_auths", "api_id", "apis"),
    Ref("api_versions", "api_id", "apis"), Ref("api_drafts", "id", "apis"),
    Ref("special_throttles", "throttle_id", "throttles"),
    Ref("plugin_bindings", "plugin_id", "plugins"), Ref("plugin_bindings", "publish_id", "publishes"),
    Ref("app_codes", "app_id", "apps"), Ref("app_auths", "app_id", "apps"), Ref("app_acls", "app_id", "apps"),
    Ref("quota_bindings", "app_id", "apps"), Ref("quota_bindings", "quota_id", "quotas"),
)


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
    parent: tuple[str, str] | None = None  # (URL param, field) for nested collections; the Ref says of what
    name_keys: tuple[str, ...] = ()        # fields that must be unique together (last one is the name)
    dup_code: str = "APIG.3309"
    filters: tuple[str, ...] = ()          # list query parameters matched against fields
    merge_update: bool = False             # PUT merges into the element (vendor PUT sends only some fields)
    keep_on_update: tuple[str, ...] = ()   # fields a replacing PUT keeps when the body omits them
    created: str | None = "create_time"
    updated: str | None = "update_time"
    generate: Callable[[Item, Settings], None] | None = None  # fill generated fields (keys, secrets) on create
    decorate: Callable[[Doc, Item, Query], Item] | None = None  # the element as answered by GET/list
    list_filter: Callable[[Doc, list[Item], Query], list[Item]] | None = None  # extra list query parameters
    write_update: Callable[[Doc, str, Item], str | None] | None = None  # store an update (default: replace)
    builtin: Item | None = None            # an element that always exists (answered, never changed)
    builtin_readonly: str = "The element cannot be changed or deleted."
    show_secrets_on_create: bool = False   # the create answer is the one time a generated secret is shown
    methods: frozenset[str] = frozenset({"create", "list", "get", "update", "delete"})

    @property
    def key(self) -> str:
        return id_key(self.collection)

    def parent_ref(self) -> Ref | None:
        if self.parent is None:
            return None
        return next(r for r in REFERENCES if r.child == self.collection and r.field == self.parent[1])


def _gen_group(item: Item, settings: Settings) -> None:
    """Every group gets a debugging sub-domain ``<group id>.<suffix>`` (the vendor assigns one too)."""
    if not item.get("sl_domain") and settings.admin_group_domain_suffix:
        item["sl_domain"] = f"{item['id']}.{settings.admin_group_domain_suffix.strip('.')}"


def _gen_app(item: Item, _: Settings) -> None:
    item.setdefault("app_key", new_id())
    item.setdefault("app_secret", gen_secret(32))
    set_if_accepted("apps", item, "status", item.get("status", 1))
    set_if_accepted("apps", item, "creator", item.get("creator", "USER"))
    set_if_accepted("apps", item, "app_type", item.get("app_type", "apig"))


def _gen_sign(item: Item, _: Settings) -> None:
    if item.get("sign_type", "hmac") in ("hmac", None):
        item.setdefault("sign_key", gen_secret(16))
        item.setdefault("sign_secret", gen_secret(32))


def _gen_app_code(item: Item, _: Settings) -> None:
    if not item.get("app_code"):
        item["app_code"] = gen_app_code()


def _gen_vpc(item: Item, _: Settings) -> None:
    for m in item.get("members") or []:
        if isinstance(m, dict) and "id" not in m:
            m["id"] = new_id()


def decorate_api(doc: Doc, item: Item, query: Query) -> Item:
    """An API as answered: its group's name and its publication in the asked (or first) environment."""
    out = dict(item)
    group = find(doc, "groups", str(item.get("group_id")))
    if group is not None:
        out.setdefault("group_name", group.get("name"))
    env_id = query.get("env_id")
    pubs = delta.publications_of(doc, str(item.get("id")))  # through the active document's index
    if pubs is None:
        pubs = [p for p in items(doc, "publishes") if p.get("api_id") == item.get("id")]
    if env_id:
        pubs = [p for p in pubs if p.get("env_id") == env_id]
    if pubs:
        p = pubs[0]
        out.update({"run_env_id": p.get("env_id"), "run_env_name": env_name(doc, str(p.get("env_id"))),
                    "publish_id": p.get("publish_id"), "publish_time": p.get("publish_time")})
    out["status"] = 1
    for k, v in (("cors", False), ("req_params", []), ("backend_params", []), ("remark", ""),
                 ("auth_opt", {"app_code_auth_type": "DISABLE"}), ("result_normal_sample", ""),
                 ("result_failure_sample", "")):
        out.setdefault(k, v)
    return out


def _api_view(doc: Doc, item: Item, query: Query) -> Item:
    """GET/list of an API show its draft (what an editor sees); the runtime view shows what is served."""
    draft = find(doc, "api_drafts", str(item.get("id")))
    definition = draft.get("definition") if draft is not None else None
    return decorate_api(doc, definition if isinstance(definition, dict) else item, query)


def _decorate_group(doc: Doc, item: Item, query: Query) -> Item:
    out = {"status": 1, "on_sell_status": 2, "is_default": 2, "sl_domain_access_enabled": True, "url_domains": [],
           **item}
    if out.get("sl_domain") and not out.get("sl_domains"):
        out["sl_domains"] = [out["sl_domain"]]
    out["url_domains"] = [{"id": domain_id(d), "min_ssl_version": "TLSv1.1", "verified_client_certificate_enabled":
                           False, "is_http_redirect_to_https": False, "cname_status": 3, **d}
                          for d in out["url_domains"] if isinstance(d, dict)]
    return out


def _decorate_throttle(doc: Doc, item: Item, query: Query) -> Item:
    tid = str(item.get("id"))
    bound = sum(1 for b in items(doc, "throttle_bindings")
                if tid in (str(b.get("policy_id")), str(b.get("strategy_id")), str(b.get("throttle_id"))))
    special = any(str(x.get("throttle_id")) == tid for x in items(doc, "special_throttles"))
    return {"type": 1, "enable_adaptive_control": "FALSE", "user_call_limits": 0, "app_call_limits": 0,
            "ip_call_limits": 0, **item, "bind_num": bound, "is_inclu_special_throttle": 1 if special else 2}


def _decorate_app(doc: Doc, item: Item, query: Query) -> Item:
    return {"status": 1, "creator": "USER", "app_type": "apig", **item}


def _decorate_acl(doc: Doc, item: Item, query: Query) -> Item:
    aid = str(item.get("id"))
    return {**item, "bind_num": sum(1 for b in items(doc, "acl_bindings") if str(b.get("acl_id")) == aid)}


def _decorate_sign(doc: Doc, item: Item, query: Query) -> Item:
    sid = str(item.get("id"))
    return {"sign_type": "hmac", **item,
            "bind_num": sum(1 for b in items(doc, "sign_bindings") if str(b.get("sign_id")) == sid)}


def _decorate_special(doc: Doc, item: Item, query: Query) -> Item:
    """An excluded throttle names its object: the app's name for an APP, the id itself otherwise."""
    out = dict(item)
    if item.get("object_type") == "APP":
        app = find(doc, "apps", str(item.get("object_id"))) or {}
        out.setdefault("app_id", item.get("object_id"))
        out.setdefault("app_name", app.get("name"))
        out.setdefault("object_name", app.get("name"))
    else:
        out.setdefault("object_name", item.get("object_id"))
    return out


def decorate_quota(doc: Doc, item: Item, query: Query) -> Item:
    """A credential quota as the vendor answers it: its id also as app_quota_id, and how many apps use it."""
    qid = str(item.get("id"))
    n = sum(1 for b in items(doc, "quota_bindings") if str(b.get("quota_id") or b.get("app_quota_id")) == qid)
    return {**item, "app_quota_id": item.get("id"), "bound_app_num": n}


def _decorate_plugin(doc: Doc, item: Item, query: Query) -> Item:
    return {**item, "plugin_id": item.get("id")}  # the vendor's models name the id plugin_id


def _decorate_channel(doc: Doc, item: Item, query: Query) -> Item:
    return {"status": 1, "vpc_channel_type": "builtin", **item}


def _apis_in_env(doc: Doc, rows: list[Item], query: Query) -> list[Item]:
    env = query.get("env_id")
    if not env:
        return rows
    published = {str(p.get("api_id")) for p in items(doc, "publishes") if p.get("env_id") == env}
    return [x for x in rows if str(x.get("id")) in published]


RELEASE_ENV: Item = {"id": RELEASE_ENV_ID, "name": RELEASE_ENV_NAME, "remark": "Production environment"}

RESOURCES: tuple[Resource, ...] = (
    Resource("api-groups", "groups", "groups", "group_id", "APIG.3001", "API group", name_keys=("name",),
             dup_code="APIG.3201", filters=("id", "name"), created="register_time",
             keep_on_update=("url_domains", "sl_domain", "sl_domains"), generate=_gen_group,
             decorate=_decorate_group),
    Resource("envs", "environments", "envs", "env_id", "APIG.3003", "environment", name_keys=("name",),
             dup_code="APIG.3205", filters=("name",), updated=None, builtin=RELEASE_ENV,
             builtin_readonly="The RELEASE environment cannot be changed or deleted."),
    Resource("env-variables", "env_variables", "variables", "env_variable_id", "APIG.3011", "environment variable",
             name_keys=("group_id", "env_id", "variable_name"), dup_code="APIG.3303",
             filters=("group_id", "env_id", "variable_name"), merge_update=True, created=None, updated=None),
    Resource("throttles", "throttles", "throttles", "throttle_id", "APIG.3005", "request throttling policy",
             name_keys=("name",), dup_code="APIG.3204", filters=("id", "name"), created="create_time", updated=None,
             decorate=_decorate_throttle),
    Resource("throttles/{throttle_id}/throttle-specials", "special_throttles", "throttle_specials", "strategy_id",
             "APIG.3013", "excluded request throttling configuration", parent=("throttle_id", "throttle_id"),
             name_keys=("throttle_id", "object_id"), dup_code="APIG.3308", filters=("object_name",),
             merge_update=True, created="apply_time", updated=None, decorate=_decorate_special),
    Resource("apis", "apis", "apis", "api_id", "APIG.3002", "API", name_keys=("group_id", "name"),
             dup_code="APIG.3202", filters=("id", "name", "group_id", "req_protocol", "req_method", "req_uri",
                                            "auth_type", "type"),
             created="register_time", decorate=_api_view, list_filter=_apis_in_env, write_update=write_api),
    Resource("signs", "signs", "signs", "sign_id", "APIG.3017", "signature key", name_keys=("name",),
             dup_code="APIG.3207", filters=("id", "name"), generate=_gen_sign,
             keep_on_update=("sign_key", "sign_secret"), decorate=_decorate_sign),
    Resource("acls", "acls", "acls", "acl_id", "APIG.3006", "access control policy", name_keys=("acl_name",),
             dup_code="APIG.3206", filters=("id", "name", "acl_name", "acl_type", "entity_type"), created=None,
             decorate=_decorate_acl),
    Resource("apps", "apps", "apps", "app_id", "APIG.3004", "app", name_keys=("name",), dup_code="APIG.3203",
             filters=("id", "name", "status", "app_key", "creator"), generate=_gen_app, created="register_time",
             keep_on_update=("app_key", "app_secret", "status", "creator", "app_type"), show_secrets_on_create=True,
             decorate=_decorate_app),
    Resource("apps/{app_id}/app-codes", "app_codes", "app_codes", "app_code_id", "APIG.3082", "AppCode",
             parent=("app_id", "app_id"), name_keys=("app_code",), dup_code="APIG.3310", generate=_gen_app_code,
             updated=None, methods=frozenset({"create", "list", "get", "delete"})),
    Resource("authorizers", "authorizers", "authorizer_list", "authorizer_id", "APIG.3081", "authorizer",
             name_keys=("name",), dup_code="APIG.3211", filters=("id", "name", "type"), updated=None),
    Resource("vpc-channels", "vpc_channels", "vpc_channels", "vpc_channel_id", "APIG.3023", "VPC channel",
             name_keys=("name",), dup_code="APIG.3208", filters=("id", "name", "type"), generate=_gen_vpc,
             keep_on_update=("members",), updated=None, decorate=_decorate_channel),
    Resource("api-groups/{group_id}/gateway-responses", "responses", "responses", "response_id", "APIG.3081",
             "gateway response", parent=("group_id", "group_id"), name_keys=("group_id", "name"),
             dup_code="APIG.3216"),
    Resource("app-quotas", "quotas", "quotas", "app_quota_id", "APIG.3080", "credential quota",
             name_keys=("name",), dup_code="APIG.3309", filters=("name",), created="create_time", updated=None,
             decorate=decorate_quota),
    Resource("plugins", "plugins", "plugins", "plugin_id", "APIG.3007", "plug-in",
             name_keys=("plugin_name",), dup_code="APIG.3309",
             filters=("plugin_id", "plugin_name", "plugin_type", "plugin_scope"), decorate=_decorate_plugin),
)


def resource_of(collection: str) -> Resource:
    return next(r for r in RESOURCES if r.collection == collection)


@dataclass(frozen=True)
class Binding:
    """A "policy bound to publications" collection (``{id, <policy field>, publish_id}`` elements)."""

    path: str
    collection: str
    body_field: str                 # the policy id field in the vendor's request body
    stored_fields: tuple[str, ...]  # candidates for the snapshot field naming the policy
    policy_collection: str
    policy_not_found: str
    response_key: str               # key of the created bindings in the POST answer
    time_field: str
    not_found: str
    policies_path: str              # GET {path}/{policies_path}?api_id=: the policies bound to an API
    policies_key: str               # key of that list
    batch_unbind: bool = False      # PUT {path}?action=delete with {"bind_ids": [...]}
    policy_name_field: str = "policy_name"  # the policy's name in binding rows (throttle_name, acl_name ...)
    apis_key: str = "apis"          # key of the binded-apis list
    api_row_id: str = "binding"     # what ``id`` is in a binded-apis row: "api" or "binding"
    policy_row_id: str = "policy"   # what ``id`` is in a binded-policies row: "policy" or "binding"
    policy_query: str = ""          # the policy id's name in list queries (throttle_id, acl_id, sign_id)

    @property
    def stored(self) -> str:
        return pick_field(self.collection, *self.stored_fields)


BINDINGS: tuple[Binding, ...] = (
    Binding("throttle-bindings", "throttle_bindings", "strategy_id", ("policy_id", "strategy_id", "throttle_id"),
            "throttles", "APIG.3005", "throttle_applys", "apply_time", "APIG.3012",
            "binded-throttles", "throttles", batch_unbind=True, policy_name_field="throttle_name", api_row_id="api",
            policy_query="throttle_id"),
    Binding("acl-bindings", "acl_bindings", "acl_id", ("acl_id",), "acls", "APIG.3006", "acl_bindings",
            "create_time", "APIG.3010", "binded-acls", "acls", batch_unbind=True, policy_name_field="acl_name",
            policy_query="acl_id"),
    Binding("sign-bindings", "sign_bindings", "sign_id", ("sign_id",), "signs", "APIG.3017", "bindings",
            "binding_time", "APIG.3018", "binded-signs", "bindings", policy_name_field="sign_name",
            apis_key="bindings", policy_row_id="binding", policy_query="sign_id"),
)


def references() -> list[Ref]:
    """Every declared reference, the bindings' included (policy and publication)."""
    refs = list(REFERENCES)
    for b in BINDINGS:
        refs.append(Ref(b.collection, b.stored, b.policy_collection))
        refs.append(Ref(b.collection, "publish_id", "publishes"))
    return refs


def cascade_delete(doc: Doc, collection: str, keys: set[str]) -> None:
    """Remove ``keys`` from ``collection`` of ``doc`` (a fresh copy) and everything that depends on them."""
    refs = references()
    work = [(collection, keys)]
    while work:
        coll, ids = work.pop()
        if not ids:
            continue
        k = id_key(coll)
        doomed = _elements(doc, coll, ids) if keyed(coll) else None
        if doomed is not None:  # found through the active index: removed by identity (positions found in C)
            if not doomed:
                continue
            doc[coll] = delta.without(doc.get(coll) or [], doomed)
        else:
            if not any(str(x.get(k)) in ids for x in items(doc, coll)):
                continue
            doc[coll] = [x for x in doc.get(coll) or [] if not (isinstance(x, dict) and str(x.get(k)) in ids)]
        for ref in refs:
            if ref.parent != coll or ref.child not in COLLECTIONS:
                continue
            dependents = _dependents(doc, ref.child, ref.field, ids)
            if not dependents:
                continue
            if not keyed(ref.child):  # keyless collection: remove directly
                doc[ref.child] = [x for x in doc.get(ref.child) or []
                                  if not (isinstance(x, dict) and str(x.get(ref.field)) in ids)]
            else:
                ck = id_key(ref.child)
                work.append((ref.child, {str(x.get(ck)) for x in dependents}))



def _elements(doc: Doc, collection: str, ids: set[str]) -> list[Item] | None:
    """The elements of ``collection`` with these ids through the active index, or None (not indexed)."""
    found = []
    for key in ids:
        hit = delta.lookup(doc, collection, key)
        if hit is delta.MISSING:
            return None
        if hit is not None:
            found.append(hit)
    return found


def _dependents(doc: Doc, collection: str, field: str, ids: set[str]) -> list[Item]:
    """The elements of ``collection`` whose ``field`` names one of ``ids`` (through the index when it has one)."""
    if len(ids) <= 16:
        found: list[Item] = []
        for value in ids:
            rows = delta.rows_of(doc, collection, field, value)
            if rows is None:
                break
            found.extend(rows)
        else:
            return found
    return [x for x in items(doc, collection) if str(x.get(field)) in ids]
