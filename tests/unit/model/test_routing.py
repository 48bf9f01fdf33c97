"""Route index precedence (docs/routing.md)."""

from __future__ import annotations

from gateway.model.routing import Router


def build(*routes: tuple[str, str, bool, str]) -> Router[str]:
    r: Router[str] = Router()
    for method, uri, prefix, name in routes:
        r.add(method, uri, prefix, name)
    return r


def target(r: Router[str], method: str, path: str) -> str | None:
    m, _ = r.lookup(method, path)
    return None if m is None else m.target


def test_exact_static_and_param() -> None:
    r = build(("GET", "/users/me", False, "me"), ("GET", "/users/{id}", False, "user"))
    assert target(r, "GET", "/users/me") == "me"
    assert target(r, "GET", "/users/42") == "user"
    m, _ = r.lookup("GET", "/users/42")
    assert m is not None and m.params == {"id": "42"}
    assert target(r, "GET", "/users") is None
    assert target(r, "GET", "/users/42/x") is None


def test_literal_beats_param_left_to_right_with_backtracking() -> None:
    r = build(("GET", "/a/{x}/c", False, "param-first"), ("GET", "/a/b/{y}", False, "literal-first"))
    assert target(r, "GET", "/a/b/c") == "literal-first"
    # the literal branch /a/b/{y} cannot match /a/b (too short) -> no match at all
    assert target(r, "GET", "/a/z/c") == "param-first"
    r2 = build(("GET", "/a/b/d", False, "lit"), ("GET", "/a/{x}/c", False, "param"))
    assert target(r2, "GET", "/a/b/c") == "param"  # literal branch fails deeper, backtrack


def test_each_api_keeps_its_own_param_names() -> None:
    r = build(("GET", "/u/{id}", False, "get"), ("DELETE", "/u/{uid}", False, "del"))
    m, _ = r.lookup("DELETE", "/u/7")
    assert m is not None and m.target == "del" and m.params == {"uid": "7"}
    m, _ = r.lookup("GET", "/u/7")
    assert m is not None and m.params == {"id": "7"}


def test_concrete_method_beats_any() -> None:
    r = build(("ANY", "/x", False, "any"), ("POST", "/x", False, "post"))
    assert target(r, "POST", "/x") == "post"
    assert target(r, "GET", "/x") == "any"


def test_exact_beats_prefix_and_longest_prefix_wins() -> None:
    r = build(("GET", "/api", True, "short"), ("GET", "/api/v1", True, "long"), ("GET", "/api/v1/ping", False, "exact"))
    assert target(r, "GET", "/api/v1/ping") == "exact"
    assert target(r, "GET", "/api/v1/pong") == "long"
    assert target(r, "GET", "/api/v2") == "short"
    assert target(r, "GET", "/api") == "short"
    m, _ = r.lookup("GET", "/api/v1/a/b")
    assert m is not None and m.suffix == "/a/b"


def test_prefix_matches_whole_segments_only() -> None:
    r = build(("GET", "/pre", True, "p"))
    assert target(r, "GET", "/pre") == "p"
    assert target(r, "GET", "/pre/") == "p"
    assert target(r, "GET", "/pre/x/y") == "p"
    assert target(r, "GET", "/prefix") is None


def test_root_prefix_catches_all() -> None:
    r = build(("ANY", "/", True, "root"), ("GET", "/health", False, "health"))
    assert target(r, "GET", "/health") == "health"
    assert target(r, "PUT", "/anything/at/all") == "root"


def test_prefix_with_param() -> None:
    r = build(("GET", "/t/{tenant}/files", True, "files"))
    m, _ = r.lookup("GET", "/t/acme/files/a.txt")
    assert m is not None and m.params == {"tenant": "acme"} and m.suffix == "/a.txt"


def test_method_mismatch_reports_path_matched() -> None:
    r = build(("POST", "/only-post", False, "p"), ("POST", "/items/{id}", False, "i"))
    m, path_matched = r.lookup("GET", "/only-post")
    assert m is None and path_matched
    m, path_matched = r.lookup("GET", "/items/3")
    assert m is None and path_matched
    m, path_matched = r.lookup("GET", "/nothing")
    assert m is None and not path_matched


def test_prefix_method_falls_back_to_shorter_prefix() -> None:
    r = build(("GET", "/a", True, "get-a"), ("POST", "/a/b", True, "post-ab"))
    assert target(r, "GET", "/a/b/c") == "get-a"
    assert target(r, "POST", "/a/b/c") == "post-ab"


def test_trailing_slash_is_significant_for_normal() -> None:
    r = build(("GET", "/a", False, "a"), ("GET", "/b/", False, "b-slash"))
    assert target(r, "GET", "/a") == "a"
    assert target(r, "GET", "/a/") is None
    assert target(r, "GET", "/b/") == "b-slash"


def test_large_table_lookup() -> None:
    r: Router[str] = Router()
    for i in range(20000):
        r.add("GET", f"/svc{i}/items/{{id}}", False, f"api{i}")
        r.add("GET", f"/static{i}", False, f"static{i}")
    assert target(r, "GET", "/svc19999/items/5") == "api19999"
    assert target(r, "GET", "/static123") == "static123"
    assert r.size == 40000
