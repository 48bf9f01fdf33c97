"""Drafts and published versions of an API (the vendor's edit -> publish -> switch-version model).

Role: control plane, off the request path. Editing a published API changes its *draft* (``api_drafts``,
control-plane state the data plane ignores); environments keep serving what was published until it is
published again. Publishing copies the draft into ``apis`` (what the data plane serves) and records a
*version* (``api_versions``: the definition as published, per environment, at most 10 kept per API and
environment). Switching to a version serves that definition again in its environment; taking a version
offline removes the API from that version's environment.

Each environment serves what was published to it: ``apis`` holds the definition published last, and a
publication (``publishes`` element) that serves another one carries its own copy (``api_definition``, the
snapshot's optional per-publication definition). Publishing the draft to one environment first pins the
other environments' publications to what they served; switching an environment to a version writes that
version's definition into its publication only. A copy equal to the ``apis`` record is dropped, so an API
served alike everywhere has no copies and a snapshot pushed through ``PUT /v1/snapshot`` is served as it is.
"""

from __future__ import annotations

from typing import Any

from gateway.compiler import validate
from gateway.control.common import AdminError, new_id, now_iso, strip_item_prefix
from gateway.control.v2.document import Doc, Item, append_item, find, items, replace_item, rows_where
from gateway.core.errors import SnapshotError
from gateway.snapshot import delta
from gateway.snapshot.collections import served_definition
from gateway.snapshot.delta import check_document, without

DRAFTS = "api_drafts"
VERSIONS = "api_versions"
KEEP_PER_ENV = 10


def published(doc: Doc, api_id: str) -> bool:
    return bool(rows_where(doc, "publishes", "api_id", api_id))


def draft_of(doc: Doc, api_id: str) -> Item | None:
    d = find(doc, DRAFTS, api_id)
    return d.get("definition") if d is not None else None


def current_definition(doc: Doc, api_id: str) -> Item | None:
    """The definition an editor sees: the draft when there is one, else the API as served."""
    return draft_of(doc, api_id) or find(doc, "apis", api_id)


def _set_draft(doc: Doc, api_id: str, definition: Item | None) -> None:
    old = find(doc, DRAFTS, api_id)
    drafts = doc.get(DRAFTS) or []
    new = {"id": api_id, "definition": definition, "update_time": now_iso()} if definition is not None else None
    done = delta.replaced(drafts, old, new) if old is not None and new is not None else None
    if done is not None:  # in place: where a delta puts it on the other nodes too
        doc[DRAFTS] = done[0]
        return
    kept = without(drafts, [old]) if old is not None else drafts
    doc[DRAFTS] = delta.appended(kept, new) if new is not None else kept


def write_api(doc: Doc, key: str, item: Item) -> str | None:
    """An API update: the draft of a published API (validated, not served), else the API itself."""
    if not published(doc, key):
        i = replace_item(doc, "apis", key, item)
        if i is None:
            raise AdminError(404, "APIG.3002", f"The API does not exist,id:{key}")
        return f"apis[{i}]"
    trial = dict(doc)
    i = replace_item(trial, "apis", key, item)
    if any("api_definition" in p for p in rows_where(doc, "publishes", "api_id", key)):
        # the draft is checked as if published everywhere (its environments' own copies set aside)
        trial["publishes"] = [{k: v for k, v in p.items() if k != "api_definition"}
                              if isinstance(p, dict) and p.get("api_id") == key else p
                              for p in doc.get("publishes") or []]
    try:
        check_document(trial, validate)  # the change and its references (the whole document when in doubt)
    except SnapshotError as exc:
        problems = strip_item_prefix(exc.problems, f"apis[{i}]")
        first = problems[0] if problems else "body"
        raise AdminError(400, "APIG.2012", f"Invalid parameter value,parameterName:{first.split(':', 1)[0]}. "
                         f"{first.split(':', 1)[-1].strip()}", problems=problems) from None
    _set_draft(doc, key, item)
    return None


def promote_draft(doc: Doc, api_id: str, env_id: str) -> Item:
    """Publishing to ``env_id``: the draft (if any) becomes the shared definition (``apis``); the API's other
    publications keep serving what they served (pinned to a copy where that differs). Returns the shared
    definition."""
    draft = draft_of(doc, api_id)
    if draft is not None and set_shared(doc, api_id, draft, env_id):
        _set_draft(doc, api_id, None)
        return draft
    if draft is not None:
        _set_draft(doc, api_id, None)
    return find(doc, "apis", api_id) or {}


def _group_kept(api_id: str, before: Item, after: Item, env_ids: list[str]) -> None:
    """Environments serve an API in one group: a definition in another group cannot sit beside theirs."""
    if before.get("group_id") != after.get("group_id"):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:group_id. API "
                         f"{api_id} is served in group {before.get('group_id')} in environment(s) "
                         f"{', '.join(env_ids)}; take it offline there before moving it to group "
                         f"{after.get('group_id')}")


def set_shared(doc: Doc, api_id: str, definition: Item, env_id: str) -> bool:
    """Replace the ``apis`` record of ``api_id`` without changing what its publications other than the one in
    ``env_id`` (about to be replaced) serve. False when there is no such API."""
    shared = find(doc, "apis", api_id)
    if shared is None:
        return False
    others = [p for p in rows_where(doc, "publishes", "api_id", api_id) if p.get("env_id") != env_id]
    if others:
        _group_kept(api_id, shared, definition, [str(p.get("env_id")) for p in others])
    pubs = doc.get("publishes") or []
    for p in others:
        pinned = _pinned(p, served_definition(shared, p), definition)
        if pinned is not p:
            done = delta.replaced(pubs, p, pinned)
            if done is not None:
                pubs = doc["publishes"] = done[0]
    replace_item(doc, "apis", api_id, definition)
    return True


def _pinned(pub: Item, serves: Item, shared: Item) -> Item:
    """``pub`` serving ``serves`` when the ``apis`` record is ``shared``: a copy only where they differ."""
    has_copy = isinstance(pub.get("api_definition"), dict)
    if serves == shared:
        return {k: v for k, v in pub.items() if k != "api_definition"} if has_copy else pub
    if has_copy and pub["api_definition"] is serves:
        return pub
    return {**pub, "api_definition": serves}


def record_version(doc: Doc, api_id: str, env_id: str, version_id: str, when: str, remark: str | None,
                   definition: Item | None = None) -> None:
    """A new effective version of ``api_id`` in ``env_id`` (the others there stop being effective)."""
    if definition is None:
        definition = find(doc, "apis", api_id) or {}
    mine = [x for x in rows_where(doc, VERSIONS, "api_id", api_id) if x.get("env_id") == env_id]
    doomed = mine[:max(0, len(mine) + 1 - KEEP_PER_ENV)]
    out = without(doc.get(VERSIONS) or [], doomed) if doomed else doc.get(VERSIONS) or []
    gone = {id(x) for x in doomed}
    for x in mine:  # the others stop being effective (found in C: a few positions in a long list)
        if id(x) not in gone and x.get("status") != 2:
            done = delta.replaced(out, x, {**x, "status": 2})
            if done is not None:
                out = done[0]
    when_no = when[:19].replace("-", "").replace(":", "").replace("T", "")
    doc[VERSIONS] = delta.appended(out, {"id": version_id, "api_id": api_id, "env_id": env_id, "version_no": when_no,
                                         "publish_time": when, "remark": remark, "status": 1,
                                         "definition": definition})


def set_effective(doc: Doc, version: Item, effective: bool) -> None:
    rows = list(doc.get(VERSIONS) or [])
    for x in rows_where(doc, VERSIONS, "api_id", str(version.get("api_id"))):
        if x.get("env_id") == version.get("env_id"):
            at = delta.position(rows, x)
            if at is not None:
                rows[at] = {**x, "status": 1 if effective and x.get("id") == version.get("id") else 2}
    doc[VERSIONS] = rows


def switch_to(doc: Doc, version: Item) -> Item:
    """Serve ``version``'s definition again in its environment (that publication only: the draft, the ``apis``
    record and the other environments are unchanged); returns the publication record."""
    api_id, env_id = str(version["api_id"]), str(version["env_id"])
    current = find(doc, "apis", api_id)
    if current is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    definition = dict(version.get("definition") or current)
    if definition.get("group_id") != current.get("group_id"):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:version_id. Version "
                         f"{version['id']} was published in group {definition.get('group_id')}; API {api_id} is "
                         f"now in group {current.get('group_id')}")
    set_effective(doc, version, True)
    pubs = [p for p in items(doc, "publishes")]
    now = now_iso()
    existing = next((p for p in pubs if p.get("api_id") == api_id and p.get("env_id") == env_id), None)
    record: Item = {"publish_id": existing["publish_id"] if existing else new_id(), "api_id": api_id,
                    "env_id": env_id, "version_id": version["id"], "publish_time": now}
    record = _pinned(record, definition, current)
    if existing is not None:
        doc["publishes"] = [record if p is existing else p for p in pubs]
    else:
        append_item(doc, "publishes", record)
    return record


def version_rows(doc: Doc, api_id: str) -> list[Item]:
    """The version history of an API; a snapshot without recorded versions shows its publications."""
    rows = rows_where(doc, VERSIONS, "api_id", api_id)
    if rows:
        return rows
    return [{"id": p.get("version_id") or p.get("publish_id"), "api_id": api_id, "env_id": p.get("env_id"),
             "version_no": p.get("version_id"), "publish_time": p.get("publish_time"), "remark": p.get("remark"),
             "status": 1} for p in rows_where(doc, "publishes", "api_id", api_id)]


def version_view(x: Item, env_name: Any) -> Item:
    return {"version_id": x.get("id"), "version_no": x.get("version_no"), "api_id": x.get("api_id"),
            "env_id": x.get("env_id"), "env_name": env_name, "remark": x.get("remark"),
            "publish_time": x.get("publish_time"), "status": x.get("status", 1)}
