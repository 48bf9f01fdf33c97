"""Swagger 2.0 / OpenAPI 3 document -> snapshot fragment: the driver over :mod:`.mapping`'s codecs.

Role: control plane only (the ``gateway import`` command and the admin import endpoints). :func:`import_openapi`
walks the document, calls one codec per section, and collects the group, APIs, publications, throttles/ACLs
and their bindings and group responses, plus warnings for everything it does not understand. Ids of
imported resources are derived from (group, method, path) / (group, name), so importing the same file twice
updates rather than duplicates. :func:`merge_fragment` adds a fragment to a snapshot.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.control.openapi import mapping as m
from gateway.control.openapi.mapping import ANY_KEY, HTTP_METHODS, Doc, stable_id
from gateway.pipeline.chain import COLLECTIONS
from gateway.snapshot.collections import RELEASE_ENV_ID, RELEASE_ENV_NAME

PATH_PARAM = re.compile(r"\{[^}]*\}")
_FRAGMENT = ("apis", "publishes", "throttles", "throttle_bindings", "acls", "acl_bindings", "plugin_bindings",
             "responses")


class Importer:
    """State of one import: the target snapshot (for name lookups), the fragment built, the warnings."""

    def __init__(self, spec: Doc, base: Doc | None, group_id: str | None, group_name: str | None,
                 publish_env: str | None) -> None:
        self.spec = spec
        self.base = base or {}
        self.warnings: list[str] = []
        self.v3 = str(spec.get("openapi", "")).startswith("3")
        info: Doc = spec["info"] if isinstance(spec.get("info"), dict) else {}
        title = str(info.get("title") or "imported")
        self.group_id = group_id or stable_id("group", title)
        existing = next((g for g in self.base.get("groups") or [] if isinstance(g, dict)
                         and g.get("id") == self.group_id), None)
        self.group: Doc | None = None
        if existing is None:  # the document's host is not the group's sub-domain: that one is assigned
            self.group = {"id": self.group_id, "name": m.group_name(group_name or title)}
            if info.get("description"):
                self.group["remark"] = str(info["description"])[:255]
        self.env_id, self.env_record = self._env(publish_env)
        self.out: Doc = {k: [] for k in _FRAGMENT}
        self.schemes = self._security_schemes()
        self.ids: dict[str, dict[str, str]] = {"throttles": {}, "acls": {}, "responses": {}}

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def lookup(self, collection: str, field: str, value: str) -> str | None:
        """The id of the target snapshot's element of ``collection`` whose ``field`` is ``value``."""
        for x in self.base.get(collection) or []:
            if isinstance(x, dict) and x.get(field) == value and (
                    collection != "responses" or x.get("group_id") in (None, self.group_id)):
                return str(x.get("id"))
        return None

    def resolve(self, ref: str) -> Any:
        """A local ``$ref`` (``#/responses/default``, ``#/components/responses/x``), or None."""
        if not ref.startswith("#/"):
            return None
        node: Any = self.spec
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    # --- document level ---------------------------------------------------------------------------
    def _env(self, publish_env: str | None) -> tuple[str | None, Doc | None]:
        if not publish_env:
            return None, None
        if publish_env in (RELEASE_ENV_ID,) or publish_env.upper() == RELEASE_ENV_NAME:
            return RELEASE_ENV_ID, None
        for env in self.base.get("environments") or []:
            if isinstance(env, dict) and (env.get("id") == publish_env or
                                          str(env.get("name", "")).upper() == publish_env.upper()):
                return str(env["id"]), None
        env_id = stable_id("env", publish_env.upper())
        return env_id, {"id": env_id, "name": publish_env}

    def _security_schemes(self) -> dict[str, Doc]:
        raw = (self.spec.get("components") or {}).get("securitySchemes") if self.v3 \
            else self.spec.get("securityDefinitions")
        out: dict[str, Doc] = {}
        for name, scheme in (raw or {}).items():
            if isinstance(scheme, dict):
                m.unknown_extensions(scheme, m.KNOWN_SCHEME_EXT, f"securityDefinitions.{name}", self.warn)
                out[name] = scheme
        return out

    def _top_level(self) -> None:
        m.unknown_extensions(self.spec, m.KNOWN_TOP_EXT, "", self.warn)
        for name, rl in (self.spec.get("x-apigateway-ratelimits") or {}).items():
            if not isinstance(rl, dict):
                self.warn(f"x-apigateway-ratelimits.{name}: must be an object, ignored")
                continue
            tid = self.ids["throttles"][name] = stable_id("throttle", self.group_id, name)
            self.out["throttles"].append(m.ratelimit_in(tid, name, rl, self.warn))
        for name, ac in (self.spec.get("x-apigateway-access-controls") or {}).items():
            if isinstance(ac, dict):
                aid = self.ids["acls"][name] = stable_id("acl", self.group_id, name)
                self.out["acls"].append(m.access_control_in(aid, name, ac))
        for name, resp in (self.spec.get("x-apigateway-responses") or {}).items():
            if isinstance(resp, dict) and resp:
                rid = self.ids["responses"][name] = stable_id("response", self.group_id, name)
                self.out["responses"].append({"id": rid, "name": name, "group_id": self.group_id, "responses": resp})

    # --- operations -------------------------------------------------------------------------------
    def run(self) -> tuple[Doc, list[str]]:
        if not self.v3 and str(self.spec.get("swagger", "")) != "2.0":
            raise ValueError("not a Swagger 2.0 or OpenAPI 3 document (no 'swagger: \"2.0\"' or 'openapi: 3.x')")
        self._top_level()
        base_path = "" if self.v3 else str(self.spec.get("basePath") or "").rstrip("/")
        for path, item in (self.spec.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            shared = [p for p in item.get("parameters") or [] if isinstance(p, dict)]
            for key, op in item.items():
                if key in ("parameters", "summary", "description", "servers", "$ref"):
                    continue
                if key != ANY_KEY and key not in HTTP_METHODS:
                    self.warn(f"paths.{path}.{key}: unknown key, ignored")
                elif isinstance(op, dict):
                    servers = op.get("servers") or item.get("servers")
                    self.operation(base_path + path, "ANY" if key == ANY_KEY else key.upper(), op, shared,
                                   m.servers_in(servers) if self.v3 else None)
        doc: Doc = {k: v for k, v in self.out.items() if v}
        if self.group is not None:
            doc["groups"] = [self.group]
        if self.env_record is not None:
            doc["environments"] = [self.env_record]
        return doc, self.warnings

    def operation(self, path: str, method: str, op: Doc, shared: list[Doc], server_schemes: list[str] | None = None
                  ) -> None:
        where = f"paths.{path}.{method.lower() if method != 'ANY' else ANY_KEY}"
        m.unknown_extensions(op, m.KNOWN_OPERATION_EXT, where, self.warn)
        api: Doc = {
            "id": stable_id("api", self.group_id, method, path), "group_id": self.group_id,
            "name": m.api_name(str(op.get("operationId") or f"{method}_{path}")),
            "type": 2 if op.get("x-apigateway-request-type") == "private" else 1,
            "req_method": method, "req_uri": path or "/",
            "match_mode": str(op.get("x-apigateway-match-mode") or "NORMAL").upper(),
            "req_protocol": m.protocol_in(server_schemes or op.get("schemes") or self.spec.get("schemes")),
            "cors": bool(op.get("x-apigateway-cors", False)),
        }
        remark = op.get("description") or op.get("summary")
        if remark:
            api["remark"] = str(remark)[:255]
        if "x-apigateway-is-send-fg-body-base64" in op:
            api["is_send_fg_body_base64"] = bool(op["x-apigateway-is-send-fg-body-base64"])
        m.auth_in(api, op.get("security", self.spec.get("security")), self.schemes, where, self.warn)
        m.params_in(api, [*shared, *(op.get("parameters") or [])], self.v3, where, self.warn)
        if self.v3 and isinstance(op.get("requestBody"), dict) and op["requestBody"].get("description"):
            api["body_remark"] = str(op["requestBody"]["description"])
        m.samples_in(api, op.get("responses"), where, self.warn, self.resolve)
        backend = op.get("x-apigateway-backend")
        if not isinstance(backend, dict):
            self.warn(f"{where}: no x-apigateway-backend; imported as a MOCK API returning an empty body")
            backend = {"type": "MOCK", "mockEndpoints": {"result-content": ""}}
        m.backend_in(api, backend, f"{where}.x-apigateway-backend", self.warn, self.lookup)
        m.policies_in(api, op.get("x-apigateway-backend-policies") or [], f"{where}.x-apigateway-backend-policies",
                      self.warn, self.lookup)
        resp_name = op.get("x-apigateway-response")
        if resp_name:
            rid = self.ids["responses"].get(resp_name) or self.lookup("responses", "name", resp_name)
            if rid:
                api["response_id"] = rid
            elif resp_name != "default":
                self.warn(f"{where}.x-apigateway-response: unknown response {resp_name!r}, ignored")
        self.out["apis"].append(api)
        self.publish_and_bind(api, op, where)

    def publish_and_bind(self, api: Doc, op: Doc, where: str) -> None:
        if self.env_id is None:
            for key in ("x-apigateway-ratelimit", "x-apigateway-access-control", "x-apigateway-plugins"):
                if op.get(key):
                    self.warn(f"{where}.{key}: not bound (bindings need a publication; "
                              "import with a publish environment)")
            return
        publish_id = stable_id("publish", str(api["id"]), self.env_id)
        self.out["publishes"].append({"publish_id": publish_id, "api_id": api["id"], "env_id": self.env_id})
        rl = op.get("x-apigateway-ratelimit")
        if rl:
            tid = self.ids["throttles"].get(rl) or self.lookup("throttles", "name", rl)
            if tid:
                self.out["throttle_bindings"].append({"id": stable_id("tb", tid, publish_id), "policy_id": tid,
                                                      "publish_id": publish_id})
            else:
                self.warn(f"{where}.x-apigateway-ratelimit: unknown policy {rl!r}, ignored")
        ac = op.get("x-apigateway-access-control")
        if ac:
            aid = self.ids["acls"].get(ac) or self.lookup("acls", "acl_name", ac)
            if aid:
                self.out["acl_bindings"].append({"id": stable_id("ab", aid, publish_id), "acl_id": aid,
                                                 "publish_id": publish_id})
            else:
                self.warn(f"{where}.x-apigateway-access-control: unknown policy {ac!r}, ignored")
        for name in op.get("x-apigateway-plugins") or []:
            pid = self.lookup("plugins", "plugin_name", str(name))
            if pid:
                self.out["plugin_bindings"].append({"id": stable_id("pb", pid, publish_id), "plugin_id": pid,
                                                    "publish_id": publish_id})
            else:
                self.warn(f"{where}.x-apigateway-plugins: unknown plug-in {name!r}, ignored")


def import_openapi(spec: Any, *, base: Doc | None = None, group_id: str | None = None, group_name: str | None = None,
                   publish_env: str | None = None) -> tuple[Doc, list[str]]:
    """Convert a Swagger 2.0 / OpenAPI 3 document to a snapshot fragment; returns (fragment, warnings).

    ``base`` is the snapshot the fragment will be merged into (to resolve VPC channel, plug-in, response and
    policy names, and an existing group). Raises ValueError for a document that is neither format.
    """
    if not isinstance(spec, dict):
        raise ValueError("the definition must be a mapping")
    return Importer(spec, base, group_id, group_name, publish_env).run()


def merge_fragment(base: Doc, fragment: Doc) -> Doc:
    """``base`` with every element of ``fragment`` added, replacing elements with the same id."""
    out = dict(base)
    out.pop("version", None)
    for name, elems in fragment.items():
        key = COLLECTIONS.get(name, (None, "id"))[1] or "id"
        incoming = {str(x.get(key)): x for x in elems if isinstance(x, dict)}
        kept = [x for x in out.get(name) or [] if not (isinstance(x, dict) and str(x.get(key)) in incoming)]
        out[name] = kept + list(incoming.values())
    return out


def _route_key(api: Doc) -> tuple[str, str, str, str]:
    uri = PATH_PARAM.sub("{}", str(api.get("req_uri") or "/")).rstrip("/") or "/"
    return (str(api.get("group_id")), str(api.get("req_method")), uri, str(api.get("match_mode") or "NORMAL"))


EXTENDED = {"throttles": ("name", "throttle_bindings", "policy_id"), "acls": ("acl_name", "acl_bindings", "acl_id")}


def resolve_extended(base: Doc, fragment: Doc, extend_mode: str) -> Doc:
    """The vendor's ``extend_mode`` for rate limits and access controls that already exist in ``base`` (same
    name): ``merge`` keeps the original definition, ``override`` replaces it; either way the imported
    bindings point at the existing policy's id."""
    out = dict(fragment)
    for coll, (name_field, bindings, ref) in EXTENDED.items():
        by_name = {str(x.get(name_field)).lower(): x for x in base.get(coll) or [] if isinstance(x, dict)}
        renamed: dict[str, str] = {}
        kept = []
        for item in out.get(coll, []):
            old = by_name.get(str(item.get(name_field)).lower())
            if old is None:
                kept.append(item)
                continue
            renamed[str(item["id"])] = str(old["id"])
            if extend_mode == "override":
                kept.append({**item, "id": old["id"]})
        if coll in out:
            out[coll] = kept
        if bindings in out:
            out[bindings] = [{**b, ref: renamed.get(str(b.get(ref)), b.get(ref))} for b in out[bindings]]
    return {k: v for k, v in out.items() if v}


def resolve_existing(base: Doc, fragment: Doc, api_mode: str) -> tuple[Doc, list[Doc], list[Doc]]:
    """The vendor's ``api_mode`` for APIs of ``fragment`` that already exist in ``base`` (same group, method,
    path and match mode): ``merge`` keeps the original and reports ``APIG.3301``; ``override`` replaces it
    (keeping its id and publications) and reports ``action: update``. Returns (fragment, success, failure)."""
    existing = {_route_key(a): a for a in base.get("apis") or [] if isinstance(a, dict)}
    base_pubs = {(p.get("api_id"), p.get("env_id")): p.get("publish_id")
                 for p in base.get("publishes") or [] if isinstance(p, dict)}
    out = {k: list(v) for k, v in fragment.items()}
    success: list[Doc] = []
    failure: list[Doc] = []
    rename_api: dict[str, str] = {}
    dropped: set[str] = set()
    kept_apis = []
    for api in out.get("apis", []):
        old = existing.get(_route_key(api))
        row = {"path": api["req_uri"], "method": api["req_method"]}
        if old is None:
            kept_apis.append(api)
            success.append({**row, "action": "create", "id": api["id"]})
        elif api_mode == "override":
            rename_api[str(api["id"])] = str(old["id"])
            kept_apis.append({**api, "id": old["id"]})
            success.append({**row, "action": "update", "id": old["id"]})
        else:
            dropped.add(str(api["id"]))
            failure.append({**row, "error_code": "APIG.3301", "error_msg": "The API already exists, an API with the "
                            f"same method, path and match mode exists. API name: {old.get('name')}"})
    out["apis"] = kept_apis
    rename_pub: dict[str, str] = {}
    dropped_pubs: set[str] = set()
    pubs = []
    for p in out.get("publishes", []):
        if str(p["api_id"]) in dropped:
            dropped_pubs.add(str(p["publish_id"]))
            continue
        api_id = rename_api.get(str(p["api_id"]), str(p["api_id"]))
        pid = base_pubs.get((api_id, p["env_id"])) or p["publish_id"]
        rename_pub[str(p["publish_id"])] = str(pid)
        pubs.append({**p, "api_id": api_id, "publish_id": pid})
    out["publishes"] = pubs
    for name in ("throttle_bindings", "acl_bindings", "plugin_bindings"):
        out[name] = [{**b, "publish_id": rename_pub.get(str(b["publish_id"]), b["publish_id"])}
                     for b in out.get(name, []) if str(b.get("publish_id")) not in dropped_pubs]
    return {k: v for k, v in out.items() if v}, success, failure
