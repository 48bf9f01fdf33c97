"""Cross-reference checks for access control and app collections (spec 02 §4, §5, §12).

Role in the pipeline: config-load time only (checks listed in :mod:`gateway.pipeline.chain`). Field shapes are
checked by the schemas in :mod:`gateway.snapshot.collections`; this adds what needs the whole document:

* ``acls``: ``acl_value`` entries parse for their ``entity_type`` (IP: address / range / CIDR, at most
  100; DOMAIN: account names of at most 64 ASCII characters, not digits only, 1024 in all);
* ``acl_bindings``: the ACL and the publication exist; at most one ACL per (publication, entity_type);
* ``apps``: ``app_key`` unique; ``app_codes``: app exists, an AppCode belongs to one app only;
* ``app_auths``: app, API and environment exist, no duplicate (app, API, environment);
* ``app_acls``: app exists, one setting per app, every value parses;
* ``features`` read here (``real_ip_from_xff``, ``real_ip_header_getter``, ``custom_auth_header``,
  ``backend_token_allow``): their parameters make sense.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.lib.ipset import parse_entry, split_values
from gateway.snapshot.features import parse_config
from gateway.snapshot.validate import Index, unknown_environment, unknown_publication

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


_AUTH_HEADER_RX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,63}")


def check_features(index: Index, problems: list[str]) -> None:
    """The feature records this package reads (spec 02 §9.2): reject what would silently do nothing."""
    for i, rec in enumerate(index.items("features")):
        name = rec.get("name")
        conf = parse_config(rec.get("config"))
        path = f"features[{i}].config"
        if name == "real_ip_from_xff" and isinstance(conf, dict) and "xff_index" in conf:
            raw = conf["xff_index"]
            if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).lstrip("-").isdigit():
                problems.append(f"{path}.xff_index: must be an integer")
        elif name == "real_ip_header_getter" and isinstance(conf, dict):
            getter = conf.get("header_getter")
            if conf.get("enable", True) and (not isinstance(getter, str) or not getter.strip()):
                problems.append(f"{path}.header_getter: must name a header, e.g. header:X-Real-IP")
        elif name == "custom_auth_header" and isinstance(conf, dict):
            header = conf.get("app_auth_header")
            if isinstance(header, str) and header:
                low = header.lower()
                if (not _AUTH_HEADER_RX.fullmatch(header) or low.startswith(("x-apig-", "x-sdk-"))
                        or low in ("x-stage", "authorization")):
                    problems.append(f"{path}.app_auth_header: 3-64 characters [A-Za-z0-9_-], letter first, not "
                                    "x-stage / authorization / x-apig-* / x-sdk-*")
        elif name == "backend_token_allow":
            value = conf.get("value", conf)
            items = value if isinstance(value, list) else [value]
            for item in items:
                users = item.get("backend_token_allow_users") if isinstance(item, dict) else None
                for user in users if isinstance(users, list) else []:
                    pattern = user.get("user_name") if isinstance(user, dict) else user
                    if isinstance(pattern, str):
                        try:
                            re.compile(pattern)
                        except re.error as exc:
                            problems.append(f"{path}.backend_token_allow_users: bad regular expression "
                                            f"{pattern!r} ({exc})")

