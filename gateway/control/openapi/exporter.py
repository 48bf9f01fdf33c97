"""Snapshot group -> Swagger 2.0 / OpenAPI 3.0 with ``x-apigateway-*``: the driver over :mod:`.mapping`'s codecs.

Role: control plane only (the ``gateway export`` command and the admin export endpoints).
"""

from __future__ import annotations

from typing import Any

from gateway.control.openapi import mapping as m
from gateway.control.openapi.mapping import ANY_KEY, Doc
from gateway.snapshot.collections import RELEASE_ENV_ID, served_definition


class _Bindings:
    """The policies bound to each publication, and the policies by id."""

    def __init__(self, doc: Doc) -> None:
        self.by = {name: {str(x.get("id")): x for x in doc.get(name) or [] if isinstance(x, dict)}
                   for name in ("throttles", "acls", "plugins", "responses", "vpc_channels")}
        self.throttle = {b.get("publish_id"): b.get("policy_id") or b.get("strategy_id") or b.get("throttle_id")
                         for b in doc.get("throttle_bindings") or [] if isinstance(b, dict)}
        self.acl = {b.get("publish_id"): b.get("acl_id") for b in doc.get("acl_bindings") or [] if isinstance(b, dict)}
        self.plugins: dict[Any, list[str]] = {}
        for b in doc.get("plugin_bindings") or []:
            if isinstance(b, dict):
                self.plugins.setdefault(b.get("publish_id"), []).append(str(b.get("plugin_id")))

    def channel_name(self, channel_id: str) -> str:
        """A VPC channel is written by name (as the vendor does); the id when the channel is unknown."""
        channel = self.by["vpc_channels"].get(channel_id)
        return str(channel.get("name") or channel_id) if channel else channel_id


DEFINES = ("spec", "proxy", "all", "dev")


class Exporter:
    """``define`` is the vendor's scope: ``spec`` frontend only; ``proxy`` + backends; ``all`` + throttles,
    access controls and plug-ins; ``dev`` like ``all`` for every API of the group, published or not."""

    def __init__(self, doc: Doc, group: Doc, env_id: str | None, v3: bool, define: str = "all",
                 apis: list[str] | None = None) -> None:
        self.doc = doc
        self.group = group
        self.env_id = env_id
        self.v3 = v3
        self.define = define
        self.only = set(apis) if apis else None
        self.b = _Bindings(doc)
        self.ratelimits: Doc = {}
        self.acls: Doc = {}
        self.used_responses: set[str] = set()

    def operation(self, api: Doc, pub: Doc | None) -> Doc:
        op: Doc = {"operationId": api.get("name")}
        if api.get("remark"):
            op["description"] = api["remark"]
        if not self.v3:
            op["schemes"] = m.protocol_out(api.get("req_protocol"))
        else:
            servers = m.servers_out(api.get("req_protocol"), str(self.group.get("sl_domain") or "localhost"))
            if servers:
                op["servers"] = servers
        security = m.auth_out(api)
        if security:
            op["security"] = security
        params = m.params_out(api, self.v3)
        if params:
            op["parameters"] = params
        body = m.body_out(api) if self.v3 else None
        if body:
            op["requestBody"] = body
        op["responses"] = m.samples_out(api)
        op["x-apigateway-request-type"] = "private" if api.get("type") == 2 else "public"
        op["x-apigateway-match-mode"] = api.get("match_mode") or "NORMAL"
        op["x-apigateway-cors"] = bool(api.get("cors", False))
        if api.get("is_send_fg_body_base64") is not None:
            op["x-apigateway-is-send-fg-body-base64"] = api["is_send_fg_body_base64"]
        if self.define != "spec":  # spec: the frontend only, no backend address leaves the gateway
            op["x-apigateway-backend"] = m.backend_out(api, self.b.channel_name)
            policies = m.policies_out(api, self.b.channel_name)
            if policies:
                op["x-apigateway-backend-policies"] = policies
        if pub is not None and self.define in ("all", "dev"):
            self.bindings(op, pub.get("publish_id"))
        rid = api.get("response_id")
        if rid and rid in self.b.by["responses"]:
            op["x-apigateway-response"] = self.b.by["responses"][rid].get("name")
            self.used_responses.add(rid)
        return op

    def bindings(self, op: Doc, pid: Any) -> None:
        by = self.b.by
        tid = self.b.throttle.get(pid)
        if tid and tid in by["throttles"]:
            t = by["throttles"][tid]
            name = str(t.get("name") or tid)
            self.ratelimits[name] = m.ratelimit_out(t)
            op["x-apigateway-ratelimit"] = name
        aid = self.b.acl.get(pid)
        if aid and aid in by["acls"]:
            a = by["acls"][aid]
            name = str(a.get("acl_name") or aid)
            self.acls[name] = m.access_control_out(a)
            op["x-apigateway-access-control"] = name
        names = [str(by["plugins"][p].get("plugin_name")) for p in self.b.plugins.get(pid, []) if p in by["plugins"]]
        if names:
            op["x-apigateway-plugins"] = names

    def run(self) -> Doc:
        env = self.env_id or RELEASE_ENV_ID
        pubs = {(p.get("api_id"), p.get("env_id")): p for p in self.doc.get("publishes") or [] if isinstance(p, dict)}
        paths: Doc = {}
        for api in self.doc.get("apis") or []:
            if not isinstance(api, dict) or api.get("group_id") != self.group.get("id"):
                continue
            if self.only is not None and str(api.get("id")) not in self.only:
                continue
            pub = pubs.get((api.get("id"), env))
            if self.env_id and pub is None and self.define != "dev":
                continue
            if self.env_id and pub is not None:
                api = served_definition(api, pub)  # the definition published to that environment
            method = str(api.get("req_method", "GET"))
            slot = ANY_KEY if method == "ANY" else method.lower()
            paths.setdefault(str(api.get("req_uri")), {})[slot] = self.operation(api, pub)
        return self.document(paths)

    def document(self, paths: Doc) -> Doc:
        group = self.group
        info = {"title": group.get("name"), "version": str(self.doc.get("version") or "1.0")}
        if group.get("remark"):
            info["description"] = group["remark"]
        out: Doc
        if self.v3:
            out = {"openapi": "3.0.1", "info": info, "paths": paths, "components": {"securitySchemes": m.SCHEMES_OUT}}
            if group.get("sl_domain"):
                out["servers"] = [{"url": f"http://{group['sl_domain']}"}]
        else:
            out = {"swagger": "2.0", "info": info, "basePath": "/", "paths": paths,
                   "securityDefinitions": m.SCHEMES_OUT}
            if group.get("sl_domain"):
                out["host"] = group["sl_domain"]
        if self.ratelimits:
            out["x-apigateway-ratelimits"] = self.ratelimits
        if self.acls:
            out["x-apigateway-access-controls"] = self.acls
        by = self.b.by["responses"]
        responses = {by[r].get("name"): by[r].get("responses") or {} for r in self.used_responses}
        if responses:
            out["x-apigateway-responses"] = responses
        return out


def export_openapi(doc: Doc, group_id: str, *, env_id: str | None = None, oas: str = "2.0", define: str = "all",
                   apis: list[str] | None = None) -> Doc:
    """One group as Swagger 2.0 (default) or OpenAPI 3.0 with ``x-apigateway-*`` extensions.

    With ``env_id`` only the APIs published there are exported and the policy bindings of that
    environment become ``x-apigateway-ratelimit`` / ``-access-control`` / ``-plugins``; without it every
    API of the group is exported with the bindings of RELEASE. ``define`` (spec/proxy/all/dev) is the vendor's
    export scope; ``apis`` limits the export to those API ids. Raises ValueError for an unknown ``define``.
    """
    if define not in DEFINES:
        raise ValueError(f"define must be one of {', '.join(DEFINES)}")
    group = next((g for g in doc.get("groups") or [] if isinstance(g, dict) and g.get("id") == group_id), None)
    if group is None:
        raise KeyError(group_id)
    return Exporter(doc, group, env_id, oas.startswith("3"), define, apis).run()
