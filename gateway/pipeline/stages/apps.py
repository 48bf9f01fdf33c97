"""The compiled app registry: who an AppKey or AppCode is, and what each app may call.

Role in the pipeline: built once per snapshot (the compile memo) from ``apps``,
``app_codes``, ``app_auths`` and ``app_acls``; the APP authentication and app-check stages
(:mod:`gateway.pipeline.stages.app_auth`) only do dictionary probes into it:

* ``by_key``: app_key -> :class:`App`;
* ``by_code``: SHA-256 digest of an AppCode -> :class:`App` (the probe never compares the secret code
  itself, so its timing says nothing about how much of a guess was right);
* ``authorized``: (api_id, env_id) -> frozenset of app ids whose authorization is not ``FAILED``;
* each app's own IP ACL (spec 02 §5.5) compiled into an :class:`~gateway.lib.ipset.IpSet`.

Checks (:func:`check_apps`): ``app_key`` unique; ``app_codes`` name an app, an AppCode belongs to one app
only; ``app_auths`` name an existing app, API and environment, no duplicate; ``app_acls`` name an app, one
setting per app, every value parses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.lib.ipset import IpSet, parse_entry
from gateway.lib.sdk_signer import PreparedKey, prepare_key
from gateway.snapshot.schema import I, L, O, Obj, S
from gateway.snapshot.validate import Index, unknown_environment

if TYPE_CHECKING:
    from gateway.pipeline.spec import BuildContext

MAX_IP_ENTRIES = 100


# --- schema: the app collections (apps, app_codes, app_auths, app_acls) ---------------------------------

_NAME_RX = r"[A-Za-z][A-Za-z0-9_]*"

APP = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=_NAME_RX),
        "remark": S(max_len=255),
        "app_key": S(True, min_len=8, max_len=200, pattern=r"[A-Za-z0-9][A-Za-z0-9_-]*"),
        "app_secret": S(True, min_len=8, max_len=128, pattern=r"[A-Za-z0-9][A-Za-z0-9_!@#$%-]*"),
        "status": I(enum=(1, 2), meanings=("valid", "frozen")),
        "creator": S(enum=("USER", "MARKET")),
        "app_type": S(enum=("apig", "roma")),
        "roma_app_type": S(),
    },
    output_only=frozenset({"register_time", "update_time", "bind_num"}),
)

APP_CODE = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "app_id": S(True),
        "app_code": S(True, min_len=64, max_len=180, pattern=r"[A-Za-z0-9+/][A-Za-z0-9+/_!@#$%&=-]*"),
    },
    output_only=frozenset({"create_time"}),
)

APP_AUTH_RESULT = Obj(
    {
        "status": S(enum=("SUCCESS", "SKIPPED", "FAILED")),
        "error_code": S(),
        "error_msg": S(),
        "api_name": S(),
        "app_name": S(),
    }
)

APP_AUTH = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "app_id": S(True),
        "api_id": S(True),
        "env_id": S(True),
        "auth_role": S(enum=("PROVIDER", "CONSUMER")),
        "auth_tunnel": S(enum=("NORMAL", "GREEN")),
        "auth_whitelist": L(S()),
        "auth_blacklist": L(S()),
        "visit_params": S(),
        "auth_result": O(APP_AUTH_RESULT),
    },
    output_only=frozenset({"auth_time", "env_name", "publish_id", "app_type", "app_creator", "api_name",
                           "app_name", "group_name", "group_id", "api_type", "api_remark", "app_remark",
                           "run_env_name", "run_env_id", "req_method", "req_uri", "roma_app_type"}),
)

APP_ACL = Obj(
    {
        "id": S(),
        "app_id": S(True),
        "app_acl_type": S(True, enum=("PERMIT", "DENY")),
        "app_acl_values": L(S(min_len=1), True, min_len=1),
    }
)

COLLECTIONS = {"apps": (APP, "id"), "app_codes": (APP_CODE, "id"), "app_auths": (APP_AUTH, "id"),
               "app_acls": (APP_ACL, None)}


# --- check (config-load time) ----------------------------------------------------------------------

def check_apps(index: Index, problems: list[str]) -> None:
    keys: dict[str, int] = {}
    for i, app in enumerate(index.items("apps")):
        key = app.get("app_key")
        if isinstance(key, str):
            if key in keys:
                problems.append(f"apps[{i}].app_key: AppKey already used by apps[{keys[key]}]")
            else:
                keys[key] = i
    apps = index.by_id["apps"]
    codes: dict[str, tuple[int, str]] = {}
    for i, c in enumerate(index.items("app_codes")):
        app_id = str(c.get("app_id"))
        if app_id not in apps:
            problems.append(f"app_codes[{i}].app_id: unknown app {c.get('app_id')!r}")
        code = c.get("app_code")
        if isinstance(code, str):
            if code in codes:
                first, owner = codes[code]
                who = "the same app" if owner == app_id else f"app {owner!r}"
                problems.append(f"app_codes[{i}].app_code: AppCode already used by {who} (app_codes[{first}])")
            else:
                codes[code] = (i, app_id)
    auths: dict[tuple[str, str, str], int] = {}
    for i, a in enumerate(index.items("app_auths")):
        app_id, api_id, env_id = str(a.get("app_id")), str(a.get("api_id")), str(a.get("env_id"))
        if app_id not in apps:
            problems.append(f"app_auths[{i}].app_id: unknown app {a.get('app_id')!r}")
        if api_id not in index.by_id["apis"]:
            problems.append(f"app_auths[{i}].api_id: unknown API {a.get('api_id')!r}")
        if env_id not in index.by_id["environments"]:
            problems.append(f"app_auths[{i}].env_id: {unknown_environment(index, a.get('env_id'))}")
        key = (app_id, api_id, env_id)
        if key in auths:
            problems.append(f"app_auths[{i}]: app {app_id!r} is already authorized for API {api_id!r} in "
                            f"environment {env_id!r} (app_auths[{auths[key]}])")
        else:
            auths[key] = i
    acl_apps: dict[str, int] = {}
    for i, acl in enumerate(index.items("app_acls")):
        app_id = str(acl.get("app_id"))
        if app_id not in apps:
            problems.append(f"app_acls[{i}].app_id: unknown app {acl.get('app_id')!r}")
        if app_id in acl_apps:
            problems.append(f"app_acls[{i}].app_id: app {app_id!r} already has an access control setting "
                            f"(app_acls[{acl_apps[app_id]}])")
        else:
            acl_apps[app_id] = i
        values = acl.get("app_acl_values")
        if isinstance(values, list):
            if len(values) > MAX_IP_ENTRIES:
                problems.append(f"app_acls[{i}].app_acl_values: at most {MAX_IP_ENTRIES} entries")
            for j, v in enumerate(values):
                if isinstance(v, str):
                    try:
                        parse_entry(v)
                    except ValueError as exc:
                        problems.append(f"app_acls[{i}].app_acl_values[{j}]: {exc}")


# --- compile: the registry the APP stages probe --------------------------------------------------------

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
    mac: PreparedKey | None = field(default=None, compare=False, repr=False)
    # ``ctx.identity`` of a call this app signed, made once and shared by those calls (read only, like an
    # AK/SK key's identity)
    signed_identity: dict[str, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signed_identity", {"app_id": self.id, "app_key": self.key, "app_name": self.name,
                                                     "auth_mode": "signature"})


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
