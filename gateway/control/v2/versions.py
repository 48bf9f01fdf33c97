"""Drafts and published versions of an API (the vendor's edit -> publish -> switch-version model).

Role: control plane, off the request path. Editing a published API changes its *draft* (``api_drafts``,
control-plane state the data plane ignores); environments keep serving what was published until it is
published again. Publishing copies the draft into ``apis`` (what the data plane serves) and records a
*version* (``api_versions``: the definition as published, per environment, at most 10 kept per API and
environment). Switching to a version puts that definition back into ``apis``; taking a version offline
removes the API from that version's environment.

The snapshot format is unchanged: ``apis`` holds the published definition, and a snapshot pushed through
``PUT /v1/snapshot`` (which has no drafts or versions) is served as it is. One limit follows: the data
plane holds one definition per API, so the version published (or switched to) last is what every
environment the API is published in serves.
"""

from __future__ import annotations

from typing import Any

from gateway.compiler import validate
from gateway.control.common import AdminError, new_id, now_iso, strip_item_prefix
from gateway.control.v2.document import Doc, Item, append_item, find, items, replace_item
from gateway.snapshot.delta import check_document
from gateway.snapshot.load import SnapshotError

DRAFTS = "api_drafts"
VERSIONS = "api_versions"
KEEP_PER_ENV = 10


def published(doc: Doc, api_id: str) -> bool:
    return any(p.get("api_id") == api_id for p in items(doc, "publishes"))


def draft_of(doc: Doc, api_id: str) -> Item | None:
    d = find(doc, DRAFTS, api_id)
    return d.get("definition") if d is not None else None


def current_definition(doc: Doc, api_id: str) -> Item | None:
    """The definition an editor sees: the draft when there is one, else the API as served."""
    return draft_of(doc, api_id) or find(doc, "apis", api_id)


def _set_draft(doc: Doc, api_id: str, definition: Item | None) -> None:
    kept = [x for x in items(doc, DRAFTS) if str(x.get("id")) != api_id]
    if definition is not None:
        kept.append({"id": api_id, "definition": definition, "update_time": now_iso()})
    doc[DRAFTS] = kept


def write_api(doc: Doc, key: str, item: Item) -> str | None:
    """An API update: the draft of a published API (validated, not served), else the API itself."""
    if not published(doc, key):
        i = replace_item(doc, "apis", key, item)
        if i is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist,id:{key}")
        return f"apis[{i}]"
    trial = dict(doc)
    i = replace_item(trial, "apis", key, item)
    try:
        check_document(trial, validate)  # the change and its references (the whole document when in doubt)
    except SnapshotError as exc:
        problems = strip_item_prefix(exc.problems, f"apis[{i}]")
        first = problems[0] if problems else "body"
        raise AdminError(400, "APIG.2012", f"Invalid parameter value,parameterName:{first.split(':', 1)[0]}. "
                         f"{first.split(':', 1)[-1].strip()}", problems=problems) from None
    _set_draft(doc, key, item)
    return None


def promote_draft(doc: Doc, api_id: str) -> Item:
    """Publishing: the draft (if any) becomes the served definition; returns that definition."""
    draft = draft_of(doc, api_id)
    if draft is not None:
        replace_item(doc, "apis", api_id, draft)
        _set_draft(doc, api_id, None)
    return find(doc, "apis", api_id) or {}


def record_version(doc: Doc, api_id: str, env_id: str, version_id: str, when: str, remark: str | None) -> None:
    """A new effective version of ``api_id`` in ``env_id`` (the others there stop being effective)."""
    definition = find(doc, "apis", api_id) or {}
    rows = [x for x in items(doc, VERSIONS)]
    mine = [x for x in rows if x.get("api_id") == api_id and x.get("env_id") == env_id]
    doomed = {id(x) for x in mine[:max(0, len(mine) + 1 - KEEP_PER_ENV)]}
    out = [({**x, "status": 2} if x in mine else x) for x in rows if id(x) not in doomed]
    out.append({"id": version_id, "api_id": api_id, "env_id": env_id, "version_no": when[:19].replace("-", "")
                .replace(":", "").replace("T", ""), "publish_time": when, "remark": remark, "status": 1,
                "definition": definition})
    doc[VERSIONS] = out


def set_effective(doc: Doc, version: Item, effective: bool) -> None:
    rows = []
    for x in items(doc, VERSIONS):
        if x.get("api_id") == version.get("api_id") and x.get("env_id") == version.get("env_id"):
            x = {**x, "status": 1 if effective and x.get("id") == version.get("id") else 2}
        rows.append(x)
    doc[VERSIONS] = rows


def switch_to(doc: Doc, version: Item) -> Item:
    """Serve ``version``'s definition again in its environment; returns the publication record."""
    api_id, env_id = str(version["api_id"]), str(version["env_id"])
    current = find(doc, "apis", api_id)
    if current is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    if draft_of(doc, api_id) is None and current != version.get("definition"):
        _set_draft(doc, api_id, current)  # the edited definition stays editable
    replace_item(doc, "apis", api_id, dict(version.get("definition") or current))
    set_effective(doc, version, True)
    pubs = [p for p in items(doc, "publishes")]
    now = now_iso()
    existing = next((p for p in pubs if p.get("api_id") == api_id and p.get("env_id") == env_id), None)
    record: Item = {"publish_id": existing["publish_id"] if existing else new_id(), "api_id": api_id,
                    "env_id": env_id, "version_id": version["id"], "publish_time": now}
    if existing is not None:
        doc["publishes"] = [record if p is existing else p for p in pubs]
    else:
        append_item(doc, "publishes", record)
    return record


def version_rows(doc: Doc, api_id: str) -> list[Item]:
    """The version history of an API; a snapshot without recorded versions shows its publications."""
    rows = [x for x in items(doc, VERSIONS) if x.get("api_id") == api_id]
    if rows:
        return rows
    return [{"id": p.get("version_id") or p.get("publish_id"), "api_id": api_id, "env_id": p.get("env_id"),
             "version_no": p.get("version_id"), "publish_time": p.get("publish_time"), "remark": p.get("remark"),
             "status": 1} for p in items(doc, "publishes") if p.get("api_id") == api_id]


def version_view(x: Item, env_name: Any) -> Item:
    return {"version_id": x.get("id"), "version_no": x.get("version_no"), "api_id": x.get("api_id"),
            "env_id": x.get("env_id"), "env_name": env_name, "remark": x.get("remark"),
            "publish_time": x.get("publish_time"), "status": x.get("status", 1)}
