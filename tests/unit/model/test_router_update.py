"""Router.updated (the incremental compile's per-change router edit) equals a router built from scratch, and
leaves the router it was made from unchanged (requests in flight keep using it)."""

from __future__ import annotations

import random

from gateway.model.routing import Router

SEGMENTS = ["a", "b", "{x}", "{y}", "c"]
METHODS = ["GET", "POST", "ANY"]
PATHS = ["/", "/a", "/a/b", "/a/zz", "/zz/b", "/a/b/c", "/c", "/b/a/c", "/a/b/c/d", "/zz", "/a/"]
Route = tuple[str, str, bool, object]


def _key(r: tuple[str, str, bool]) -> tuple[str, str, bool]:
    return r[0], r[1].replace("{x}", "{}").replace("{y}", "{}"), r[2]


def _build(routes: list[Route]) -> Router[object]:
    router: Router[object] = Router()
    for r in routes:
        router.add(*r)
    return router


def _answers(router: Router[object]) -> list[tuple[object, bool, object, object]]:
    out = []
    for method in ("GET", "POST", "PUT"):
        for path in PATHS:
            m, seen = router.lookup(method, path)
            out.append((m.target if m else None, seen, m.params if m else None, m.suffix if m else None))
    return out


def test_updated_router_answers_like_a_fresh_one() -> None:
    rnd = random.Random(5)

    def route() -> tuple[str, str, bool]:
        uri = "/" + "/".join(rnd.choice(SEGMENTS) for _ in range(rnd.randrange(0, 4)))
        return rnd.choice(METHODS), uri, rnd.random() < 0.3

    for _ in range(1500):
        routes: dict[tuple[str, str, bool], Route] = {}
        for _ in range(rnd.randrange(0, 15)):
            r = route()
            routes[_key(r)] = (*r, object())
        base = _build(list(routes.values()))
        before = _answers(base)
        removed: list[Route] = []
        added: list[Route] = []
        for k in list(routes)[:rnd.randrange(0, len(routes) + 1)]:
            if rnd.random() < 0.5:
                removed.append(routes.pop(k))
        seen: set[tuple[str, str, bool]] = set()
        for _ in range(rnd.randrange(0, 4)):
            r = route()
            if _key(r) in seen:
                continue
            seen.add(_key(r))
            if _key(r) in routes:
                removed.append(routes[_key(r)])
            routes[_key(r)] = (*r, object())
            added.append(routes[_key(r)])
        updated = base.updated(removed, added)
        fresh = _build(list(routes.values()))
        assert _answers(updated) == _answers(fresh)
        assert updated.size == fresh.size
        assert _answers(base) == before  # the old router still answers as before
