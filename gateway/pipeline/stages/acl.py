"""API access control policies (ACLs) bound per publication: the IP stage and the account stage.

Role in the pipeline: at config-load time every ACL is compiled once (IP lists into an
:class:`~gateway.lib.ipset.IpSet`, account lists into a frozenset) and the bindings are resolved to
publications; each endpoint gets at most two stages:

* ``ip_acl`` — the resolved client IP (``ctx.client_ip``, see :mod:`gateway.pipeline.stages.client_ip`)
  against the publication's ``IP`` ACL, before authentication (each compiled stage remembers the verdict per
  address, at most ``IP_VERDICTS_MAX``);
* ``domain_acl`` — the caller's account name (``ctx.user_name``, set by IAM authentication)
  against a ``DOMAIN`` ACL and the account id (``ctx.identity["domain_id"]``) against a ``DOMAIN_ID`` ACL.

Combination rule (spec 02 §4.4): ``PERMIT`` admits only subjects in the list, ``DENY`` refuses the
subjects in the list; an unknown subject (no account on an APP/NONE call, an unparseable client IP) is
refused by ``PERMIT`` and admitted by ``DENY``; when several ACLs are bound (one per entity type) all
of them must admit the call. A refusal is ``ACCESS_DENIED`` (403): APIG.0401 unknown client IP,
APIG.0402 IP not allowed, APIG.0302 IAM account not allowed, APIG.0306 no account to check.

Checks (:func:`check_acls`): ``acl_value`` entries parse for their ``entity_type`` (IP: address / range /
CIDR, at most 100; DOMAIN: account names of at most 64 ASCII characters, not digits only, 1024 in all);
``acl_bindings`` name an existing ACL and publication, at most one ACL per (publication, entity_type).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core.errors import account_denied, ip_denied, no_account
from gateway.lib.ipset import IpSet, ip_key, parse_entry, split_values
from gateway.snapshot.schema import Obj, S
from gateway.snapshot.validate import Index, unknown_publication

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import Stage
    from gateway.pipeline.spec import BuildContext, EndpointDraft


# --- schema: the collections this stage owns --------------------------------------------------------

_NAME_RX = r"[A-Za-z][A-Za-z0-9_]*"

ACL = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "acl_name": S(True, min_len=3, max_len=64, pattern=_NAME_RX),
        "acl_type": S(True, enum=("PERMIT", "DENY")),
        "entity_type": S(True, enum=("IP", "DOMAIN", "DOMAIN_ID")),
        "acl_value": S(True, min_len=1),  # entries checked per entity_type in gateway.pipeline.stages.acl
    },
    output_only=frozenset({"update_time", "bind_num"}),
)

ACL_BINDING = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "acl_id": S(True),
        "publish_id": S(),  # or the vendor record's api_id + env_id
        "api_id": S(),
        "env_id": S(),
    },
    output_only=frozenset({"create_time", "bind_time", "acl_name", "entity_type", "acl_type", "acl_value",
                           "env_name", "api_name", "bind_id"}),
)

COLLECTIONS = {"acls": (ACL, "id"), "acl_bindings": (ACL_BINDING, "id")}


# --- check (config-load time): what the field schemas cannot say -------------------------------------

MAX_IP_ENTRIES = 100
MAX_DOMAIN_TOTAL = 1024
MAX_DOMAIN_NAME = 64


def binding_publish_id(index: Index, binding: dict[str, Any]) -> str | None:
    """The publication an ACL binding refers to: ``publish_id``, or the vendor record's api_id + env_id."""
    pid = binding.get("publish_id")
    if pid:
        return str(pid) if str(pid) in index.publish_by_id else None
    api_id, env_id = binding.get("api_id"), binding.get("env_id")
    for pub in index.publishes_by_api.get(str(api_id), []):
        if pub.get("env_id") == env_id:
            return str(pub.get("publish_id"))
    return None


def check_acl_value(entity_type: str, value: str) -> list[str]:
    """Reasons why ``value`` is not a valid ``acl_value`` for ``entity_type`` (empty when valid)."""
    return list(_acl_value_reasons(entity_type, value))


@functools.lru_cache(maxsize=1024)
def _acl_value_reasons(entity_type: str, value: str) -> tuple[str, ...]:
    """check_acl_value, remembered: every validation (each incremental change's too) checks every ACL policy,
    and parsing their address lists is the costly part."""
    return tuple(_check_acl_value(entity_type, value))


def _check_acl_value(entity_type: str, value: str) -> list[str]:
    entries = split_values(value)
    if not entries:
        return ["has no entries"]
    reasons: list[str] = []
    if entity_type == "IP":
        if len(entries) > MAX_IP_ENTRIES:
            reasons.append(f"at most {MAX_IP_ENTRIES} IP entries (has {len(entries)})")
        for entry in entries:
            try:
                parse_entry(entry)
            except ValueError as exc:
                reasons.append(str(exc))
    else:
        if len(value) > MAX_DOMAIN_TOTAL:
            reasons.append(f"must be at most {MAX_DOMAIN_TOTAL} characters")
        for entry in entries:
            if len(entry) > MAX_DOMAIN_NAME or not entry.isascii():
                reasons.append(f"{entry[:70]!r}: account entries are at most {MAX_DOMAIN_NAME} ASCII characters")
            elif entity_type == "DOMAIN" and entry.isdigit():
                reasons.append(f"{entry!r}: an account name cannot be digits only")
    return reasons


def check_acls(index: Index, problems: list[str]) -> None:
    for i, rec in enumerate(index.items("acls")):
        etype, value = rec.get("entity_type"), rec.get("acl_value")
        if isinstance(etype, str) and isinstance(value, str):
            for reason in check_acl_value(etype, value):
                problems.append(f"acls[{i}].acl_value: {reason}")
    seen: dict[tuple[str, str], int] = {}
    acls = index.by_id["acls"]
    for i, b in enumerate(index.items("acl_bindings")):
        acl: dict[str, Any] | None = acls.get(str(b.get("acl_id")))
        if acl is None:
            problems.append(f"acl_bindings[{i}].acl_id: unknown ACL {b.get('acl_id')!r}")
        if not b.get("publish_id") and not (b.get("api_id") and b.get("env_id")):
            problems.append(f"acl_bindings[{i}].publish_id: is required (or api_id and env_id)")
            continue
        pid = binding_publish_id(index, b)
        if pid is None:
            what = b.get("publish_id") or f"{b.get('api_id')}@{b.get('env_id')}"
            problems.append(f"acl_bindings[{i}].publish_id: {unknown_publication(index, what)}")
            continue
        if b.get("publish_id") and b.get("api_id"):
            pub = index.publish_by_id[pid]
            if pub.get("api_id") != b.get("api_id") or (b.get("env_id") and pub.get("env_id") != b.get("env_id")):
                problems.append(f"acl_bindings[{i}]: publish_id {pid!r} is not api_id/env_id of this binding")
        if acl is None:
            continue
        key = (pid, str(acl.get("entity_type")))
        if key in seen:
            problems.append(f"acl_bindings[{i}]: publication {pid!r} already has a {key[1]} ACL "
                            f"(acl_bindings[{seen[key]}])")
        else:
            seen[key] = i


# --- compile ---------------------------------------------------------------------------------------

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


IP_VERDICTS_MAX = 4096  # client addresses whose verdict one IP ACL stage remembers (emptied when full)
_ALLOWED, _UNKNOWN, _DENIED = 0, 1, 2


def _ip_verdict(acls: tuple[CompiledAcl, ...], client_ip: str) -> int:
    key = ip_key(client_ip)
    for acl in acls:
        if key is None:
            if acl.permit:
                return _UNKNOWN
            continue
        if acl.ips.contains_key(key) is not acl.permit:  # type: ignore[union-attr]
            return _DENIED
    return _ALLOWED


def _ip_stage(acls: tuple[CompiledAcl, ...]) -> Stage:
    # client address -> verdict: a pure function of the address and this compiled stage (a new snapshot builds
    # a new stage), so each address is parsed and looked up once, not on every call
    verdicts: dict[str, int] = {}

    def ip_acl(ctx: RequestContext) -> None:
        client_ip = ctx.client_ip
        verdict = verdicts.get(client_ip)
        if verdict is None:
            verdict = _ip_verdict(acls, client_ip)
            if len(client_ip) <= 64:  # an address (a header-supplied text that is not one is not remembered)
                if len(verdicts) >= IP_VERDICTS_MAX:
                    verdicts.clear()
                verdicts[client_ip] = verdict
        if verdict:
            if verdict == _UNKNOWN:
                raise ip_denied("Unknown client IP address.", "APIG.0401")
            raise ip_denied()

    return ip_acl


def _domain_stage(acls: tuple[CompiledAcl, ...]) -> Stage:
    def domain_acl(ctx: RequestContext) -> None:
        for acl in acls:
            subject = ctx.user_name if acl.entity_type == "DOMAIN" else (ctx.identity or {}).get("domain_id")
            if subject is None:
                if acl.permit:
                    raise no_account()
                continue
            if (subject in acl.names) is not acl.permit:
                raise account_denied()

    return domain_acl


def build_ip_acl(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    acls = tuple(a for a in acl_table(build).get(draft.publish_id, ()) if a.entity_type == "IP")
    return _ip_stage(acls) if acls else None


def build_domain_acl(draft: EndpointDraft, build: BuildContext) -> Stage | None:
    acls = tuple(a for a in acl_table(build).get(draft.publish_id, ()) if a.entity_type != "IP")
    return _domain_stage(acls) if acls else None
