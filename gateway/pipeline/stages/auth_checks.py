"""Checks of the gateway features the authentication and client-IP stages read (spec 02 §9).

Role in the pipeline: config-load time only (listed in :mod:`gateway.pipeline.chain`): ``real_ip_from_xff``,
``real_ip_header_getter``, ``custom_auth_header`` and ``backend_token_allow`` parameters make sense. The ACL
and app collections' checks live with their stages (:mod:`.acl`, :mod:`.apps`).
"""

from __future__ import annotations

import re

from gateway.snapshot.features import parse_config
from gateway.snapshot.validate import Index

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

