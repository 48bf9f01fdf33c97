"""delta.list_diff (how a change planner finds what an admin edit changed in a collection) agrees with a
comparison of the sets of elements, keeps document order, and gives up past its budget; apply_delta through
an active index equals the scanning version."""

from __future__ import annotations

import random
from typing import Any

from gateway.snapshot import delta


def test_list_diff_equals_set_difference() -> None:
    rnd = random.Random(1)
    for _ in range(3000):
        old: list[Any] = [{"i": k} for k in range(rnd.randrange(0, 200))]
        new = list(old)
        for _ in range(rnd.randrange(0, 6)):
            op = rnd.randrange(4)
            if op == 0 and new:
                del new[rnd.randrange(len(new))]
            elif op == 1:
                new.insert(rnd.randrange(len(new) + 1), {"new": 1})
            elif op == 2 and new:
                new[rnd.randrange(len(new))] = {"replaced": 1}
            elif op == 3 and len(new) > 1:  # a move: neither removed nor added
                x = new.pop(rnd.randrange(len(new)))
                new.insert(rnd.randrange(len(new) + 1), x)
        diff = delta.list_diff(old, new, 1000)
        assert diff is not None
        removed, added = diff
        assert sorted(map(id, removed)) == sorted({id(x) for x in old} - {id(x) for x in new})
        assert sorted(map(id, added)) == sorted({id(x) for x in new} - {id(x) for x in old})
        where = {id(x): k for k, x in enumerate(new)}
        assert [where[id(x)] for x in added] == sorted(where[id(x)] for x in added)  # document order


def test_list_diff_gives_up_past_the_budget() -> None:
    old = [{"i": k} for k in range(100)]
    assert delta.list_diff(old, [dict(x) for x in old], 10) is None
    assert delta.list_diff(old, old[:50], 10) is None
    assert delta.list_diff(old, old[:95], 10) is not None


def test_apply_delta_through_the_index_equals_the_scan() -> None:
    doc = {"apis": [{"id": f"a{k}", "group_id": "g"} for k in range(50)],
           "publishes": [{"publish_id": f"p{k}", "api_id": f"a{k}", "env_id": "e"} for k in range(50)]}
    ops = {"apis": {"put": [{"id": "a3", "group_id": "g", "name": "x"}, {"id": "a99", "group_id": "g"}],
                    "del": ["a7", "a8"]},
           "publishes": {"put": [], "del": ["p7", "p8"]}}
    scanned = delta.apply_delta(doc, ops)
    ix = delta.DocIndex.build(doc)
    assert ix is not None
    delta.remember(ix)
    indexed = delta.apply_delta(doc, ops)
    assert indexed == scanned
    assert [a["id"] for a in indexed["apis"]][:8] == ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a9"]
    assert indexed["apis"][-1]["id"] == "a99" and indexed["apis"][3]["name"] == "x"
    assert doc["apis"][3] == {"id": "a3", "group_id": "g"}  # the base document is not changed


def test_the_edit_log_equals_the_set_difference() -> None:
    """Lists made by delta.without / replaced / appended remember their change, composed over several edits."""
    rnd = random.Random(2)
    for _ in range(2000):
        old: list[Any] = [{"i": k} for k in range(rnd.randrange(0, 60))]
        new = old
        for _ in range(rnd.randrange(1, 6)):
            op = rnd.randrange(3)
            if op == 0 and new:
                new = delta.without(new, rnd.sample(new, min(len(new), rnd.randrange(1, 3))))
            elif op == 1 and new:
                done = delta.replaced(new, rnd.choice(new), {"replaced": 1})
                assert done is not None
                new = done[0]
            else:
                new = delta.appended(new, {"new": 1})
        if new is old:
            continue
        rec = delta.recorded_edit(old, new)
        assert rec is not None
        removed, added = rec
        assert sorted(map(id, removed)) == sorted({id(x) for x in old} - {id(x) for x in new})
        assert sorted(map(id, added)) == sorted({id(x) for x in new} - {id(x) for x in old})
        where = {id(x): k for k, x in enumerate(new)}
        fresh = [x for x in added if "new" in x]  # appended: in document order
        assert [where[id(x)] for x in fresh] == sorted(where[id(x)] for x in fresh)  # appended: in order
        assert delta.recorded_edit(new, old) is None  # only from the base it was made from
    base: list[Any] = [{"i": 0}]
    a, b, a2 = {"i": 1}, {"i": 2}, {"i": 3}
    two = delta.appended(delta.appended(base, a), b)
    done = delta.replaced(two, a, a2)
    assert done is not None
    assert delta.recorded_edit(base, done[0]) == ([], [a2, b])  # a2 takes a's place among the appended
    plain = [{"i": 1}]
    assert delta.recorded_edit(plain, [*plain, {"i": 2}]) is None  # not made by the helpers: compared instead


def test_position_uses_a_checked_hint() -> None:
    """position() answers from where an element was last seen only when it is still there; otherwise it finds
    it by a scan (after deletions moved it, or when the hint is about another list)."""
    items = [{"i": k} for k in range(1000)]
    delta.remember_places(items)
    assert delta.position(items, items[700]) == 700
    shifted = delta.without(items, [items[3], items[10]])
    assert delta.position(shifted, items[700]) == 698  # moved left by the deletions before it
    other = list(reversed(items))
    assert delta.position(other, items[700]) == 299  # the hint is about another list: scanned
    assert delta.position(items, {"i": 1}) is None
    done = delta.replaced(shifted, items[500], {"i": "x"})
    assert done is not None and done[1] == 498 and done[0][498] == {"i": "x"}


def test_apply_delta_leaves_an_edit_record() -> None:
    """A node applying a delta through its index records the edit, so its change planner does not compare the
    collections either."""
    doc = {"apis": [{"id": f"a{k}", "group_id": "g"} for k in range(40)]}
    ix = delta.DocIndex.build(doc)
    assert ix is not None
    delta.remember(ix)
    ops = {"apis": {"put": [{"id": "a3", "group_id": "g", "name": "x"}, {"id": "a77", "group_id": "g"}],
                    "del": ["a9"]}}
    new = delta.apply_delta(doc, ops)
    rec = delta.recorded_edit(doc["apis"], new["apis"])
    assert rec is not None
    removed, added = rec
    assert sorted(x["id"] for x in removed) == ["a3", "a9"]
    assert [x["id"] for x in added] == ["a3", "a77"]
    compared = delta.list_diff(doc["apis"], new["apis"], 100)
    assert compared is not None
    assert sorted(map(id, removed)) == sorted(map(id, compared[0]))
    assert sorted(map(id, added)) == sorted(map(id, compared[1]))


def test_a_merged_chain_of_deltas_equals_the_deltas_in_sequence() -> None:
    """merge_deltas: a node that fell behind applies the chain as one delta; the document is the same, element
    order included (an element deleted and put again ends up appended, as in sequence)."""
    rnd = random.Random(4)
    for _ in range(300):
        doc = {"apis": [{"id": f"a{k}", "group_id": "g", "v": 0} for k in range(30)]}
        ix = delta.DocIndex.build(doc)
        assert ix is not None
        delta.remember(ix)
        chain = []
        for step in range(rnd.randrange(1, 5)):
            keys = [f"a{rnd.randrange(40)}" for _ in range(rnd.randrange(0, 4))]
            dels = [f"a{rnd.randrange(40)}" for _ in range(rnd.randrange(0, 3))]
            chain.append({"apis": {"put": [{"id": k, "group_id": "g", "v": step + 1} for k in dict.fromkeys(keys)],
                                   "del": sorted(set(dels) - set(keys))}})
        sequential: dict[str, Any] = doc
        for d in chain:
            sequential = delta.apply_delta(sequential, d)
        merged = delta.apply_delta(doc, delta.merge_deltas(chain))  # through the index
        assert merged["apis"] == sequential["apis"]
