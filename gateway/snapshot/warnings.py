"""Warnings about a valid snapshot: things that load but are probably not what the author meant.

Role: config-load time only (``gateway validate`` prints them; ``gateway run`` logs them when it loads a file).
A warning never rejects a document: an API published nowhere, an empty snapshot, a group that answers for every
Host because it is the only one (or the configured ``default_group``).
"""

from __future__ import annotations

from gateway.snapshot.collections import RELEASE_ENV_ID
from gateway.snapshot.validate import Index


def snapshot_warnings(index: Index, default_group: str | None = None) -> list[str]:
    out: list[str] = []
    apis = index.items("apis")
    groups = index.items("groups")
    if not apis:
        out.append("the snapshot has no APIs: every request will be answered 404 "
                   "(add apis and publishes, or push a snapshot to the admin API)")
    for i, api in enumerate(apis):
        if not index.publishes_by_api.get(str(api.get("id"))):
            out.append(f"apis[{i}] ({api.get('name')!r}, id {api.get('id')!r}): published in no environment, so it "
                       f"is never served (add a publishes entry with api_id {api.get('id')!r} and env_id "
                       f"{RELEASE_ENV_ID})")
    if default_group:
        for i, g in enumerate(groups):
            if default_group in (g.get("id"), g.get("name")):
                out.append(f"groups[{i}] ({g.get('name')!r}): it is default_group, so it also answers requests "
                           "whose Host matches no group's domain")
    elif len(groups) == 1:
        g = groups[0]
        out.append(f"groups[0] ({g.get('name')!r}): the only group becomes the catch-all: it answers requests for "
                   "any Host, not only its own domains (add a second group, or set default_group, to change this)")
    return out
