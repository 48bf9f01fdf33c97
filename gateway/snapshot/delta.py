"""What changed between two snapshot documents, and the small document that validates the change.

Role in the pipeline: config-load time only. :class:`DocIndex` indexes the active document (built once,
O(size), after a full compile); :func:`plan_change` compares it with a new document and, when the change is
confined to APIs and the records hanging off them, returns a :class:`ChangePlan`: the APIs whose
publications must be recompiled, the groups whose routers must be rebuilt, a *partial document* holding
exactly what those APIs depend on, and the index of the new document (derived from the old one by the
change). Validating and compiling the partial document checks the changed records and their references, not
the whole snapshot; the cost follows the size of the change.

Which changes qualify ("per-API" changes):

* ``apis`` and ``publishes`` elements created, replaced or deleted;
* elements of any collection whose elements all name an API or a publication (``api_id`` or
  ``publish_id``): throttle / ACL / signature / plug-in bindings, app authorisations ...;
* ``env_variables`` (every API of the groups concerned is recompiled);
* collections the data plane never reads (``CONTROL_PLANE_ONLY``: API drafts and versions): only the added
  elements are checked, nothing is recompiled.

Anything else (a group, an environment, a policy, an app, a feature ...) returns None: the caller compiles
the whole document. Elements are compared by identity (the admin API never edits an element in place: it
replaces it, and shares the unchanged ones and the unchanged collections between versions); other
collections by equality. A change that touches more than ``max_apis`` APIs also returns None.

The partial document holds: every API of the groups concerned (route conflicts are checked per group and
environment), their publications and per-API records, the per-API records that name a changed, deleted or
unpublished API or publication (so a dangling reference is caught), the groups concerned, their
environment variables, and every other collection whole (policies, apps, environments ... are small and
did not change). Identifiers of added elements are checked for uniqueness against the whole collection.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress, count, islice, repeat
from operator import is_, is_not
from typing import Any

from gateway.core.errors import SnapshotError
from gateway.snapshot.collections import COLLECTIONS, CONTROL_PLANE_ONLY
from gateway.snapshot.validate import Index

Doc = dict[str, Any]
Item = dict[str, Any]
Multi = dict[str, list[Item]]
CORE = ("apis", "publishes", "env_variables", *sorted(CONTROL_PLANE_ONLY))
VERSIONS = "api_versions"  # the recorded versions of each API (control-plane state, indexed by API)


def _key_field(collection: str) -> str | None:
    if collection in COLLECTIONS:
        return COLLECTIONS[collection][1]
    return "id"


def _refs(x: Any) -> bool:
    return isinstance(x, dict) and ("publish_id" in x or "api_id" in x)


def _group(items: Iterable[Item], keyf: Callable[[Item], str]) -> Multi:
    out: Multi = {}
    for x in items:
        out.setdefault(keyf(x), []).append(x)
    return out


def _regroup(m: Multi, removed: list[Item], added: list[Item], keyf: Callable[[Item], str],
             idf: Callable[[Item], Any] = lambda x: x.get("id")) -> Multi:
    """A copy of ``m`` without ``removed`` and with ``added`` (only the lists of touched keys are rebuilt). An
    added element takes the place of a removed one with the same id in the same list, else it is appended:
    the lists keep document order under the admin API's edits (replace in place, append, delete)."""
    if not removed and not added:
        return m
    out = dict(m)
    gone = {id(x): x for x in removed}
    replacing: dict[tuple[str, Any], Item] = {}
    for x in added:
        replacing[(keyf(x), idf(x))] = x
    for k in {keyf(x) for x in removed} | {keyf(x) for x in added}:
        rest: list[Item] = []
        for x in out.get(k, ()):
            if id(x) in gone:
                new = replacing.pop((k, idf(x)), None)
                if new is not None:
                    rest.append(new)
            else:
                rest.append(x)
        rest.extend(x for x in added if keyf(x) == k and replacing.get((k, idf(x))) is x)
        if rest:
            out[k] = rest
        else:
            out.pop(k, None)
    return out


# id(element) -> where it was last seen in its collection. A hint only: checked before it is used (an element
# keeps its place when others are replaced or appended; deletions move the ones after it a little to the left).
_PLACES: dict[int, int] = {}
MAX_PLACES = 1_000_000


def remember_places(items: list[Any], start: int = 0) -> None:
    """Note where the elements of ``items`` (from ``start``) are, for :func:`position`."""
    if len(_PLACES) > MAX_PLACES:
        _PLACES.clear()
    _PLACES.update(zip(map(id, islice(items, start, None)), count(start)))


def position(items: list[Any], obj: Any, start: int = 0) -> int | None:
    """The index of ``obj`` itself (identity, not equality) in ``items`` from ``start``: where it was last seen
    when it is still there, else found by a scan that runs in C (from a little before that place first)."""
    hint = _PLACES.get(id(obj))
    if hint is not None and start <= hint < len(items) and items[hint] is obj:
        return hint
    at = None
    if hint is not None and hint - LOOKBACK > start:
        at = next(compress(count(hint - LOOKBACK), map(is_, islice(items, hint - LOOKBACK, None), repeat(obj))),
                  None)
    if at is None:
        at = next(compress(count(start), map(is_, islice(items, start, None), repeat(obj))), None)
    if at is not None:
        _PLACES[id(obj)] = at
    return at


LOOKBACK = 256  # how far left of its last place an element is looked for first


def _mismatch(o: list[Any], i: int, n: list[Any], j: int) -> int:
    """How many elements ``o[i:]`` and ``n[j:]`` share (by identity) before the first difference (in C)."""
    return next(compress(count(), map(is_not, islice(o, i, None), islice(n, j, None))), min(len(o) - i, len(n) - j))


LOOKAHEAD = 64  # how far a removed or inserted run is looked for when two lists diverge


def list_diff(o: list[Any], n: list[Any], limit: int) -> tuple[list[Any], list[Any]] | None:
    """(removed, added) between two versions of a collection, compared by identity, ``added`` in document
    order; None when more than ``limit`` elements differ (the caller compares the whole collections).

    The admin API edits a collection in a few places (replace in place, append, delete some elements), so the
    lists are walked in step: the shared runs are skipped in C (:func:`_mismatch`), and at each divergence a
    short look-ahead tells a removal, an insertion and a replacement apart. The cost is one C pass over the
    lists plus the size of the change, instead of a dictionary of every element. An element moved inside the
    list counts as neither removed nor added (like a comparison of the sets of elements)."""
    removed: list[Any] = []
    added: list[Any] = []
    i = j = 0
    lo, ln = len(o), len(n)
    while True:
        k = _mismatch(o, i, n, j)
        i += k
        j += k
        if i >= lo or j >= ln:
            removed.extend(islice(o, i, None))
            added.extend(islice(n, j, None))
            break
        if len(removed) + len(added) > 2 * limit:
            return None
        d = position(o[i + 1:i + 1 + LOOKAHEAD], n[j])  # o[i:i+1+d] were removed
        e = position(n[j + 1:j + 1 + LOOKAHEAD], o[i])  # n[j:j+1+e] were inserted
        if d is not None and (e is None or d <= e):
            removed.extend(o[i:i + 1 + d])
            i += 1 + d
        elif e is not None:
            added.extend(n[j:j + 1 + e])
            j += 1 + e
        else:  # replaced
            removed.append(o[i])
            added.append(n[j])
            i += 1
            j += 1
    if len(removed) + len(added) > 2 * limit:
        return None
    if removed and added:  # moved elements are neither
        both = {id(x) for x in removed} & {id(x) for x in added}
        if both:
            removed = [x for x in removed if id(x) not in both]
            added = [x for x in added if id(x) not in both]
    return removed, added


def _api_of(x: Item) -> str:
    return str(x.get("api_id"))


def _pub_of(x: Item) -> str:
    return str(x.get("publish_id"))


def _group_of(x: Item) -> str:
    return str(x.get("group_id"))


@dataclass(eq=False)
class DocIndex:
    """Lookups over one document that a change can update without rescanning it."""

    doc: Doc
    by_key: dict[str, dict[str, Item]]     # keyed tracked collections: str(key) -> element
    per_api: frozenset[str]                # collections whose elements all name an API or a publication
    group_apis: Multi                      # group id -> APIs
    pubs_by_api: Multi                     # API id -> publications
    vars_by_group: Multi                   # group id -> environment variables
    rows_by_api: dict[str, Multi] = field(default_factory=dict)  # per-API collection -> API id -> elements
    rows_by_pub: dict[str, Multi] = field(default_factory=dict)  # per-API collection -> publish id -> elements
    versions_by_api: Multi = field(default_factory=dict)  # API id -> recorded versions (api_versions)

    @classmethod
    def build(cls, doc: Doc) -> DocIndex | None:
        """Index ``doc``; None when it has elements that are not objects or repeat a key (never planned)."""
        by_key: dict[str, dict[str, Item]] = {}
        per_api: set[str] = set()
        for name, value in doc.items():
            if not isinstance(value, list):
                continue
            if len(set(map(id, value))) != len(value) or not all(isinstance(x, dict) for x in value):
                return None
            tracked = name in CORE or (name not in ("groups", "environments", "responses") and value
                                       and all(map(_refs, value)))
            if not tracked:
                continue
            if name not in CORE:
                per_api.add(name)
            remember_places(value)
            kf = _key_field(name)
            if kf is None:
                continue
            keyed = {str(x.get(kf)): x for x in value}
            if len(keyed) != len(value):
                return None
            by_key[name] = keyed
        ix = cls(doc, by_key, frozenset(per_api),
                 _group(doc.get("apis") or [], _group_of), _group(doc.get("publishes") or [], _api_of),
                 _group(doc.get("env_variables") or [], _group_of))
        for name in per_api:
            rows = doc[name]
            ix.rows_by_api[name] = _group((x for x in rows if "api_id" in x), _api_of)
            ix.rows_by_pub[name] = _group((x for x in rows if "publish_id" in x), _pub_of)
        ix.versions_by_api = _group(doc.get(VERSIONS) or [], _api_of)
        return ix


@dataclass
class ChangePlan:
    """A per-API change: what to recompile, the partial document that validates it, the new index."""

    apis: set[str]                 # ids of APIs whose publications are recompiled (created/changed/deleted)
    groups: set[str]               # ids of groups whose routers are rebuilt
    partial: Doc                   # the document validated and compiled for this change
    collections: set[str]          # changed top-level keys
    index: DocIndex                # the index of the new document
    changes: dict[str, tuple[list[Item], list[Item]]] = field(default_factory=dict)  # (removed, added)
    base: Doc | None = None        # the document the change was planned against

    @property
    def fresh(self) -> set[int]:
        """``id()`` of what the partial document's validation checks in itself: the added elements (every other
        element comes unchanged from the validated active document) and the APIs the change touches (an API's own
        checks read its publications and its group's variables, which the change may have changed)."""
        out = {id(x) for _, added in self.changes.values() for x in added}
        out.update(id(a) for a in self.partial.get("apis") or () if str(a.get("id")) in self.apis)
        return out


def plan_change(old: DocIndex, new: Doc, max_apis: int = 500) -> ChangePlan | None:
    """A :class:`ChangePlan` for a per-API change from ``old`` to ``new``, or None (compile everything)."""
    odoc = old.doc
    changes: dict[str, tuple[list[Item], list[Item]]] = {}
    budget = 4 * max_apis
    for name in (set(odoc) | set(new)) - {"version"}:
        o, n = odoc.get(name), new.get(name)
        if o is n:
            continue
        if not isinstance(n, list) or not isinstance(o, list | None):
            return None
        tracked = name in CORE or name in old.per_api or (not o and all(map(_refs, n)))
        if not tracked:
            if o != n:
                return None
            continue
        if _key_field(name) is None:
            return None  # keyless per-API collections: compiled whole
        diff = recorded_edit(o, n) or list_diff(o or [], n, budget)
        if diff is None:
            return None
        removed, added = diff
        budget -= len(added) + len(removed)
        if budget < 0:
            return None
        if not all(isinstance(x, dict) for x in added):
            return None
        if name not in CORE and not all(map(_refs, added)):
            return None
        if added or removed:
            changes[name] = (removed, added)

    ix = DocIndex(new, dict(old.by_key), old.per_api | {k for k in changes if k not in CORE},
                  old.group_apis, old.pubs_by_api, old.vars_by_group, dict(old.rows_by_api), dict(old.rows_by_pub),
                  old.versions_by_api)
    for name, (removed, added) in changes.items():
        kf = _key_field(name)
        assert kf is not None
        puts: dict[str, Item] = {}
        for x in added:
            k = str(x.get(kf))
            if x.get(kf) is None or k in puts:
                return None  # a missing or repeated id: the full validation reports it
            puts[k] = x
        gone = {id(x) for x in removed}
        # overwrite in place and delete only the keys that disappear: a dictionary without deleted slots is
        # copied by the next change in one block
        keyed = dict(old.by_key.get(name, {}))
        for k, x in puts.items():
            cur = keyed.get(k)
            if cur is not None and id(cur) not in gone:
                return None  # the id of an element that stays: the full validation reports it
            keyed[k] = x
        for x in removed:
            k = str(x.get(kf))
            if k not in puts and keyed.get(k) is x:
                del keyed[k]
        ix.by_key[name] = keyed
        if name == "apis":
            ix.group_apis = _regroup(old.group_apis, removed, added, _group_of)
        elif name == "publishes":
            ix.pubs_by_api = _regroup(old.pubs_by_api, removed, added, _api_of, _pub_of)
        elif name == "env_variables":
            ix.vars_by_group = _regroup(old.vars_by_group, removed, added, _group_of)
        elif name == VERSIONS:
            ix.versions_by_api = _regroup(old.versions_by_api, removed, added, _api_of)
        elif name in CONTROL_PLANE_ONLY:
            pass
        else:
            ix.rows_by_api[name] = _regroup(old.rows_by_api.get(name, {}), [x for x in removed if "api_id" in x],
                                            [x for x in added if "api_id" in x], _api_of)
            ix.rows_by_pub[name] = _regroup(old.rows_by_pub.get(name, {}),
                                            [x for x in removed if "publish_id" in x],
                                            [x for x in added if "publish_id" in x], _pub_of)
    for name in old.per_api:
        if name not in new:
            ix.rows_by_api.pop(name, None)
            ix.rows_by_pub.pop(name, None)
    ix.per_api = frozenset(k for k in ix.per_api if k in new)
    if not changes:
        return ChangePlan(set(), set(), {}, set(), ix, changes, odoc)

    old_pubs, new_pubs = old.by_key.get("publishes", {}), ix.by_key.get("publishes", {})
    old_apis, new_apis = old.by_key.get("apis", {}), ix.by_key.get("apis", {})
    touched: set[str] = set()
    var_groups: set[str] = set()
    gone_pubs: set[str] = set()
    for name, (removed, added) in changes.items():
        if name in CONTROL_PLANE_ONLY:
            continue
        for rec in (*removed, *added):
            if name == "apis":
                touched.add(str(rec.get("id")))
            elif name == "env_variables":
                var_groups.add(str(rec.get("group_id")))
            else:
                if rec.get("api_id") is not None:
                    touched.add(str(rec.get("api_id")))
                pid = rec.get("publish_id")
                if name == "publishes":
                    gone_pubs.add(str(pid))
                elif pid is not None:
                    for pubs in (old_pubs, new_pubs):
                        pub = pubs.get(str(pid))
                        if pub is not None:
                            touched.add(str(pub.get("api_id")))
    groups = set(var_groups)
    for api_id in touched:
        for apis in (old_apis, new_apis):
            api = apis.get(api_id)
            if api is not None:
                groups.add(str(api.get("group_id")))
    group_apis = [a for g in groups for a in ix.group_apis.get(g, ())]
    for g in var_groups:  # environment variables: every API of the group is recompiled
        touched.update(str(a.get("id")) for a in ix.group_apis.get(g, ()))
    if len(touched) > max_apis or len(group_apis) > max(4 * max_apis, 2000):
        return None
    partial = _partial(new, ix, changes, groups, group_apis, touched, gone_pubs)
    return ChangePlan(touched, groups, partial, set(changes), ix, changes, odoc)


def _partial(new: Doc, ix: DocIndex, changes: dict[str, tuple[list[Item], list[Item]]], groups: set[str],
             group_apis: list[Item], touched: set[str], gone_pubs: set[str]) -> Doc:
    api_ids = {str(a.get("id")) for a in group_apis} | touched
    pubs = [p for a in api_ids for p in ix.pubs_by_api.get(a, ())]
    pub_ids = {str(p.get("publish_id")) for p in pubs} | gone_pubs  # records naming a removed publication too
    out: Doc = {}
    for name, value in new.items():
        if name == "version":
            continue
        if name == "apis":
            out[name] = group_apis
        elif name == "publishes":
            out[name] = pubs
        elif name == "groups":
            out[name] = [g for g in value or [] if isinstance(g, dict) and str(g.get("id")) in groups]
        elif name == "env_variables":
            out[name] = [v for g in groups for v in ix.vars_by_group.get(g, ())]
        elif name == "responses":
            out[name] = [r for r in value or [] if isinstance(r, dict)
                         and (not r.get("group_id") or str(r.get("group_id")) in groups)]
        elif name in CONTROL_PLANE_ONLY:
            out[name] = list(changes.get(name, ((), ()))[1])  # never served: the new elements' schema only
        elif name in ix.per_api:
            rows: dict[int, Item] = {}
            by_api, by_pub = ix.rows_by_api.get(name, {}), ix.rows_by_pub.get(name, {})
            for a in api_ids:
                rows.update((id(x), x) for x in by_api.get(a, ()))
            for p in pub_ids:
                rows.update((id(x), x) for x in by_pub.get(p, ()))
            rows.update((id(x), x) for x in changes.get(name, ((), ()))[1])
            out[name] = list(rows.values())
        else:
            out[name] = value
    return out


# --- validating a document against the active one (the admin API's checks before a draft is kept) -------
_ACTIVE: weakref.WeakSet[DocIndex] = weakref.WeakSet()


def remember(ix: DocIndex) -> None:
    """Register the index of an active document (the serving process does; forgotten when dropped)."""
    _ACTIVE.add(ix)


def check_document(doc: Doc, validate: Callable[..., Index]) -> None:
    """Validate ``doc`` with ``validate`` (the full schema: :func:`gateway.compiler.validate`; raises
    SnapshotError). When it is a per-API change of an active document, only the change and its references are
    validated; a problem found that way is reported by the whole-document validation, so paths are exact."""
    base = None
    best = 0
    for ix in list(_ACTIVE):
        shared = sum(1 for k, v in doc.items() if isinstance(v, list) and ix.doc.get(k) is v)
        if shared > best:
            base, best = ix, shared
    plan = plan_change(base, doc) if base is not None else None
    if plan is not None:
        try:
            if plan.partial:
                validate(plan.partial, only=plan.fresh)
            return
        except SnapshotError:
            pass
    validate(doc)


# --- deltas between nodes -------------------------------------------------------------------------------
def doc_delta(plan: ChangePlan) -> dict[str, dict[str, list[Any]]]:
    """The change as data another node can apply to the same base document: per collection, the elements
    to put (replace the element with the same key, else append; in document order) and the keys to delete."""
    out: dict[str, dict[str, list[Any]]] = {}
    for name, (removed, added) in plan.changes.items():
        kf = _key_field(name) or "id"
        puts = list(added)  # already in document order (list_diff)
        kept = {str(x.get(kf)) for x in added}
        dels = sorted({str(x.get(kf)) for x in removed} - kept)
        out[name] = {"put": puts, "del": dels}
    return out


def apply_delta(doc: Doc, delta: dict[str, dict[str, list[Any]]]) -> Doc:
    """``doc`` with ``delta`` applied (a new document; unchanged elements and collections are shared).

    When ``doc`` is an active document (it has a :class:`DocIndex`), the elements are found through the index
    and their positions by an identity scan in C, so the cost follows the size of the delta."""
    out = dict(doc)
    out.pop("version", None)
    for name, ops in delta.items():
        kf = _key_field(name) or "id"
        dels = set(ops.get("del") or ())
        puts = {str(x.get(kf)): x for x in ops.get("put") or []}
        items = _apply_indexed(doc, name, kf, dels, puts)
        if items is None:
            items = []
            for x in doc.get(name) or []:
                k = str(x.get(kf)) if isinstance(x, dict) else None
                if k in dels:
                    continue
                if k is not None and k in puts:
                    items.append(puts.pop(k))
                else:
                    items.append(x)
            items.extend(puts.values())
        out[name] = items
    return out


def merge_deltas(deltas: list[dict[str, dict[str, list[Any]]]]) -> dict[str, dict[str, list[Any]]]:
    """One delta equal to applying ``deltas`` in order (a node that fell behind applies a chain at once, on its
    indexed document, instead of one delta after another on documents that have no index). An element deleted
    and put again stays in ``del`` and ``put``: it is removed from its place and appended, as in sequence."""
    merged: dict[str, tuple[set[str], dict[str, Any]]] = {}
    for d in deltas:
        for name, ops in d.items():
            kf = _key_field(name) or "id"
            dels, puts = merged.setdefault(name, (set(), {}))
            for k in ops.get("del") or ():
                puts.pop(str(k), None)
                dels.add(str(k))
            for x in ops.get("put") or []:
                puts[str(x.get(kf))] = x
    return {name: {"put": list(puts.values()), "del": sorted(dels)} for name, (dels, puts) in merged.items()}


def _apply_indexed(doc: Doc, name: str, kf: str, dels: set[str], puts: dict[str, Any]) -> list[Any] | None:
    """``apply_delta`` of one collection through the active index of ``doc``, or None (the caller scans)."""
    ix = _index_for(doc, name)
    if ix is None or name not in ix.by_key or _key_field(name) != kf:
        return None
    keyed = ix.by_key[name]
    base = doc[name]
    items = list(base)
    doomed: list[int] = []
    appended: list[Any] = []
    removed: list[Any] = []  # for the edit log: what the receiving node's change planner reads
    replacing: list[Any] = []
    readded = dels & puts.keys()  # deleted and put again: removed from their place, appended
    if len(dels) > 16:  # many deletions: one pass
        removed = [keyed[k] for k in dels if k in keyed]
        gone = {id(x) for x in removed}
        items = [x for x in items if id(x) not in gone]
        dels = set()
    for k in dels:
        x = keyed.get(k)
        if x is not None:
            at = position(items, x)
            if at is None:
                return None
            doomed.append(at)
            removed.append(x)
    for k, x in puts.items():
        old = keyed.get(k) if k not in readded else None
        at = position(items, old) if old is not None else None
        if old is not None and at is None:
            return None
        if at is None:
            appended.append(x)
        else:
            items[at] = x
            _PLACES[id(x)] = at
            removed.append(old)
            replacing.append(x)
    for at in sorted(doomed, reverse=True):
        del items[at]
    items.extend(appended)
    remember_places(items, len(items) - len(appended))
    return _record(items, base, removed, replacing + appended)


def _index_for(doc: Doc, collection: str) -> DocIndex | None:
    """An active index whose document shares ``collection`` (the same list object) with ``doc``."""
    value = doc.get(collection)
    if not isinstance(value, list):
        return None
    for ix in list(_ACTIVE):
        if ix.doc.get(collection) is value:
            return ix
    return None


MISSING: Any = object()


def lookup(doc: Doc, collection: str, key: str) -> Any:
    """The element of ``collection`` with id ``key`` through an active index (O(1)): the element, None when
    there is none, or :data:`MISSING` when no index covers this document (the caller scans)."""
    ix = _index_for(doc, collection)
    if ix is None or collection not in ix.by_key:
        return MISSING
    return ix.by_key[collection].get(key)


def publications_of(doc: Doc, api_id: str) -> list[Item] | None:
    """The publications of ``api_id`` in document order through an active index, or None (the caller scans)."""
    ix = _index_for(doc, "publishes")
    if ix is None:
        return None
    return list(ix.pubs_by_api.get(api_id, ()))


def rows_of(doc: Doc, collection: str, field_name: str, value: str) -> list[Item] | None:
    """The elements of ``collection`` whose ``field_name`` is ``value``, in document order, through an active
    index: APIs by group, publications by API, recorded versions by API, per-API records by API or
    publication. None when no index covers it (the caller scans)."""
    ix = _index_for(doc, collection)
    if ix is None:
        return None
    table: Multi | None = None
    if collection == "apis" and field_name == "group_id":
        table = ix.group_apis
    elif collection == "publishes" and field_name == "api_id":
        table = ix.pubs_by_api
    elif collection == VERSIONS and field_name == "api_id":
        table = ix.versions_by_api
    elif collection in ix.per_api and field_name == "api_id":
        table = ix.rows_by_api.get(collection)
    elif collection in ix.per_api and field_name == "publish_id":
        table = ix.rows_by_pub.get(collection)
    if table is None:
        return None
    return [x for x in table.get(value, ()) if str(x.get(field_name)) == value]


# --- the edit log: lists made by the helpers below remember what they changed -------------------------------
# id(new list) -> (new list, base list, removed, added). An edit made through :func:`without`, :func:`replaced` or
# :func:`appended` is recorded, so that :func:`plan_change` reads what a collection's change was (the records from
# the old list to the new one, composed) instead of comparing the two lists. The lists are never changed after
# they are made (the admin API's rule); a chain of records is trusted only when it leads from exactly the new
# list to exactly the old one and its counts add up. Bounded: the oldest records are dropped.
_EDITS: dict[int, tuple[list[Any], list[Any], list[Any], list[Any]]] = {}
MAX_EDITS = 64


def _record(out: list[Any], base: list[Any], removed: list[Any], added: list[Any]) -> list[Any]:
    _EDITS[id(out)] = (out, base, removed, added)
    while len(_EDITS) > MAX_EDITS:
        try:
            del _EDITS[next(iter(_EDITS))]
        except (KeyError, RuntimeError, StopIteration):  # another thread trimmed it meanwhile
            break
    return out


def recorded_edit(old: list[Any] | None, new: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """(removed, added) of ``new`` relative to ``old`` from the edit log, ``added`` in document order for the
    appended elements; None when the log does not lead from ``new`` back to ``old``."""
    if old is None:
        return None
    chain: list[tuple[list[Any], list[Any], list[Any], list[Any]]] = []
    cur = new
    while cur is not old:
        rec = _EDITS.get(id(cur))
        if rec is None or rec[0] is not cur or len(chain) >= 32:
            return None
        chain.append(rec)
        cur = rec[1]
    removed: list[Any] = []
    added: list[Any] = []
    for _, _, rem, add in reversed(chain):
        if len(rem) == 1 and len(add) == 1:  # replacing an element this change added: at its place
            at = position(added, rem[0])
            if at is not None:
                added[at] = add[0]
                continue
        undone = {id(x) for x in rem} & {id(x) for x in added}  # added by this change, removed again
        removed.extend(x for x in rem if id(x) not in undone)
        if undone:
            added = [x for x in added if id(x) not in undone]
        added.extend(add)
    if len(new) != len(old) - len(removed) + len(added):
        return None
    if removed and added:  # an element removed and put back is unchanged
        both = {id(x) for x in removed} & {id(x) for x in added}
        if both:
            removed = [x for x in removed if id(x) not in both]
            added = [x for x in added if id(x) not in both]
    return removed, added


def without(items: list[Any], doomed: list[Any]) -> list[Any]:
    """A copy of ``items`` without the elements ``doomed`` (identity): found in C when they are few."""
    out = list(items)
    if len(doomed) > 16:
        gone = {id(x) for x in doomed}
        out = [x for x in out if id(x) not in gone]
        return _record(out, items, [x for x in items if id(x) in gone], [])
    found = []
    for x in doomed:
        at = position(out, x)
        if at is not None:
            del out[at]
            found.append(x)
    return _record(out, items, found, [])


def replaced(items: list[Any], old: Any, new: Any) -> tuple[list[Any], int] | None:
    """A copy of ``items`` with the element ``old`` (identity) replaced by ``new``, and its index; None when
    ``old`` is not there."""
    at = position(items, old)
    if at is None:
        return None
    out = list(items)
    out[at] = new
    _PLACES[id(new)] = at
    return _record(out, items, [old], [new]), at


def appended(items: list[Any], *new: Any) -> list[Any]:
    """A copy of ``items`` with ``new`` appended."""
    out = [*items, *new]
    remember_places(out, len(items))
    return _record(out, items, [], list(new))
