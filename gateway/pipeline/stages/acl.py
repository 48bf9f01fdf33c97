"""API access control policies (ACLs) bound per publication: the IP stage and the account stage.

Role in the pipeline: at config-load time every ACL is compiled once (IP lists into an
:class:`~gateway.lib.ipset.IpSet`, account lists into a frozenset) and the bindings are resolved to
publications; each endpoint gets at most two stages:

* ``ip_acl`` — the resolved client IP (``ctx.client_ip``, see :mod:`gateway.pipeline.stages.client_ip`)
  against the publication's ``IP`` ACL, before authentication;
* ``domain_acl`` — the caller's account name (``ctx.user_name``, set by IAM authentication)
  against a ``DOMAIN`` ACL and the account id (``ctx.identity["domain_id"]``) against a ``DOMAIN_ID`` ACL.

Combination rule (spec 02 §4.4): ``PERMIT`` admits only subjects in the list, ``DENY`` refuses the
subjects in the list; an unknown subject (no account on an APP/NONE call, an unparseable client IP) is
refused by ``PERMIT`` and admitted by ``DENY``; when several ACLs are bound (one per entity type) all
of them must admit the call. A refusal is ``ACCESS_DENIED`` (403): APIG.0401 unknown client IP,
APIG.0402 IP not allowed, APIG.0302 IAM account not allowed, APIG.0306 no account to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core.errors import GatewayError
from gateway.lib.ipset import IpSet, ip_key, split_values
from gateway.pipeline.stages.auth_checks import binding_publish_id

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft
    from gateway.snapshot.validate import Index


@dataclass(frozen=True, slots=True)
class CompiledAcl:
    id: str
    name: str
    permit: bool
    entity_type: str  # IP | DOMAIN | DOMAIN_ID
    ips: IpSet | None
    names: frozenset[str]


def compile_acl(acl: dict[str, object]) -> CompiledAcl:
    etype = str(acl["entity_type"])
    values = split_values(str(acl["acl_value"]))
    return CompiledAcl(
        id=str(acl["id"]), name=str(acl.get("acl_name", "")), permit=acl["acl_type"] == "PERMIT",
        entity_type=etype, ips=IpSet(values) if etype == "IP" else None,
        names=frozenset(values) if etype != "IP" else frozenset(),
    )


def acl_table(build: BuildContext) -> dict[str, list[CompiledAcl]]:
    """publish_id -> the ACLs bound to it (compiled once per snapshot)."""
    return build.once("acl_table", lambda: _compile_table(build.index))


def _compile_table(index: Index) -> dict[str, list[CompiledAcl]]:
    compiled = {aid: compile_acl(acl) for aid, acl in index.by_id["acls"].items()}
    table: dict[str, list[CompiledAcl]] = {}
    for b in index.items("acl_bindings"):
        pid = binding_publish_id(index, b)
        acl = compiled.get(str(b.get("acl_id")))
        if pid is not None and acl is not None:
            table.setdefault(pid, []).append(acl)
    return table


def ip_denied(message: str = "The IP address is not authorized to access the API.",
              code: str = "APIG.0402") -> GatewayError:
    return GatewayError("ACCESS_DENIED", code, message)


def _ip_stage(acls: tuple[CompiledAcl, ...]) -> Stage:
    async def ip_acl(ctx: RequestContext) -> None:
        key = ip_key(ctx.client_ip)
        for acl in acls:
            if key is None:
                if acl.permit:
                    raise ip_denied("Unknown client IP address.", "APIG.0401")
                continue
            if acl.ips.contains_key(key) is not acl.permit:  # type: ignore[union-attr]
                raise ip_denied()

    return ip_acl


def _domain_stage(acls: tuple[CompiledAcl, ...]) -> Stage:
    async def domain_acl(ctx: RequestContext) -> None:
        for acl in acls:
            subject = ctx.user_name if acl.entity_type == "DOMAIN" else (ctx.identity or {}).get("domain_id")
            if subject is None:
                if acl.permit:
                    raise GatewayError("ACCESS_DENIED", "APIG.0306", "API access denied.")
                continue
            if (subject in acl.names) is not acl.permit:
                raise GatewayError("ACCESS_DENIED", "APIG.0302",
                                   "The IAM user is not authorized to access the API.")

    return domain_acl


def build_ip_acl(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    acls = tuple(a for a in acl_table(build).get(draft.publish_id, ()) if a.entity_type == "IP")
    return _ip_stage(acls) if acls else None


def build_domain_acl(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    acls = tuple(a for a in acl_table(build).get(draft.publish_id, ()) if a.entity_type != "IP")
    return _domain_stage(acls) if acls else None
