"""The compiled app registry: who an AppKey or AppCode is, and what each app may call.

Role in the pipeline: built once per snapshot (the compile memo) from ``apps``,
``app_codes``, ``app_auths`` and ``app_acls``; the APP authentication and app-check stages
(:mod:`gateway.pipeline.stages.app_auth`) only do dictionary probes into it:

* ``by_key``: app_key -> :class:`App`;
* ``by_code``: SHA-256 digest of an AppCode -> :class:`App` (the probe never compares the secret code
  itself, so its timing says nothing about how much of a guess was right);
* ``authorized``: (api_id, env_id) -> frozenset of app ids whose authorization is not ``FAILED``;
* each app's own IP ACL (spec 02 §5.5) compiled into an :class:`~gateway.lib.ipset.IpSet`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.lib.ipset import IpSet
from gateway.lib.sdk_signer import prepare_key

if TYPE_CHECKING:
    from gateway.pipeline.spec import BuildContext
    from gateway.snapshot.validate import Index


@dataclass(frozen=True, slots=True)
class App:
    id: str
    name: str
    key: str
    secret: str
    status: int
    acl_permit: bool | None = None  # None: no app ACL
    acl_ips: IpSet | None = None
    # HMAC-SHA256 keyed with the secret, prepared at compile time (the request path copies it)
    mac: hmac.HMAC | None = field(default=None, compare=False, repr=False)


@dataclass
class AppRegistry:
    by_id: dict[str, App] = field(default_factory=dict)
    by_key: dict[str, App] = field(default_factory=dict)
    by_code: dict[bytes, App] = field(default_factory=dict)
    authorized: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def app_for_code(self, code: str) -> App | None:
        return self.by_code.get(code_digest(code))


def code_digest(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8", "surrogateescape")).digest()


def app_registry(build: BuildContext) -> AppRegistry:
    return build.once("app_registry", lambda: _compile(build.index))


def _compile(index: Index) -> AppRegistry:
    acls = {str(a.get("app_id")): a for a in index.items("app_acls")}
    reg = AppRegistry()
    by_id = reg.by_id
    for app_id, rec in index.by_id["apps"].items():
        acl = acls.get(app_id)
        app = App(
            id=app_id, name=str(rec.get("name", "")), key=str(rec["app_key"]), secret=str(rec["app_secret"]),
            status=int(rec.get("status") or 1),
            acl_permit=None if acl is None else acl.get("app_acl_type") == "PERMIT",
            acl_ips=None if acl is None else IpSet(acl.get("app_acl_values") or []),
            mac=prepare_key(str(rec["app_secret"])),
        )
        by_id[app_id] = app
        reg.by_key[app.key] = app
    for c in index.items("app_codes"):
        owner = by_id.get(str(c.get("app_id")))
        if owner is not None:
            reg.by_code[code_digest(str(c["app_code"]))] = owner
    authorized: dict[tuple[str, str], set[str]] = {}
    for a in index.items("app_auths"):
        if (a.get("auth_result") or {}).get("status") == "FAILED":
            continue
        authorized.setdefault((str(a["api_id"]), str(a["env_id"])), set()).add(str(a["app_id"]))
    reg.authorized = {k: frozenset(v) for k, v in authorized.items()}
    return reg
