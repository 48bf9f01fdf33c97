"""The backend request builder (gateway.pipeline.handle.build_backend_request): the forwarded header fields
stay a list written straight into the request head, unless a mapped header must replace a same-named field or
something needs the header mapping (request hooks, gRPC/function targets)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.model.plan import (
    BackendParam,
    BackendRequest,
    MappingPlan,
    UriTemplate,
    apply_mapping,
    apply_mapping_into,
)
from gateway.pipeline.handle import build_backend_request


def ctx(target: str = "/a/7", **headers: str) -> Any:
    h = CIMultiDictProxy(CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items()))
    pairs = [x.partition("=")[::2] for x in target.partition("?")[2].split("&") if x]
    request = SimpleNamespace(raw_path=target, scheme="http", host=h.get("Host", "gw"), body_exists=False,
                              query=CIMultiDict(pairs))
    return SimpleNamespace(headers=h, host="gw.example", peer_ip="10.0.0.1", client_ip="10.0.0.1",
                           request=request, request_id="rid", params={}, path_params={"id": "7"},
                           query=request.query, path=target.partition("?")[0], path_suffix="", method="GET",
                           body=None)


def header(name: str, value: str) -> BackendParam:
    return BackendParam("HEADER", name, value, None, None)


def test_forwarded_fields_go_out_as_head_lines_in_one_pass() -> None:
    c = ctx(Host="gw.example", Accept="*/*", X_Request_Id="theirs", X_Forwarded_For="1.1.1.1",
            Connection="keep-alive, X-Hop", X_Hop="1", X_Hop_Too="kept")
    plan = MappingPlan((header("X-Const", "c\r\n1"),), frozenset(), frozenset({"x-const"}))
    breq = build_backend_request(c, None, "ANY", plan, UriTemplate.parse("/items/{id}"))  # type: ignore[arg-type]
    assert breq.path == "/items/7" and breq.query == [] and breq.query_text == ""
    assert breq.fields is not None  # no mapping made
    assert breq.head_lines("backend:81") == (
        "Accept: */*\r\nX-Hop-Too: kept\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: gw.example\r\nX-Real-IP: 10.0.0.1\r\nX-Const: c  1\r\nX-Request-Id: rid\r\n"
        "Host: backend:81\r\n")
    headers = breq.headers  # a hook asks for the mapping: made once, the only copy from then on
    assert breq.fields is None and headers is breq.headers and headers["X-Request-Id"] == "rid"
    assert "X-Hop" not in headers and headers.getall("X-Forwarded-For") == ["1.1.1.1, 10.0.0.1"]


def test_a_mapped_header_the_gateway_sets_or_maps_twice_replaces_by_name() -> None:
    assert MappingPlan((header("X-A", "1"), header("X-B", "2")), frozenset(), frozenset()).plain_headers
    for params in ((header("X-A", "1"), header("x-a", "2")), (header("X-Forwarded-For", "9.9.9.9"),),
                   (header("X-Request-Id", "mine"),), (header("Host", "h"),)):
        plan = MappingPlan(params, frozenset(), frozenset(p.name.lower() for p in params))
        assert not plan.plain_headers
        breq = build_backend_request(ctx(Accept="*/*"), None, "GET", plan, None)  # type: ignore[arg-type]
        assert breq.fields is None  # the mapping path, as before: one field per name
        names = [k.lower() for k in breq.headers]
        assert len(names) == len(set(names)) and breq.headers["X-Request-Id"] == "rid"
    plan = MappingPlan((header("X-A", "1"), header("x-a", "2")), frozenset(), frozenset({"x-a"}))
    assert build_backend_request(ctx(), None, "GET", plan, None).headers["X-A"] == "2"  # type: ignore[arg-type]


def test_query_is_parsed_only_when_the_caller_sent_one() -> None:
    plan = MappingPlan((), frozenset({"drop"}), frozenset())
    breq = build_backend_request(ctx("/a/7?b=2&drop=1&c"), None, "GET", plan, None)  # type: ignore[arg-type]
    assert breq.query_text == "b=2&c" and breq.query == [("b", "2"), ("c", "")]


def test_head_lines_never_make_a_second_line() -> None:
    breq = BackendRequest("GET", "/", [], fields=[("X-A", "v\r\nInjected: 1"), ("X-B", "ok")])
    assert breq.head_lines("h\n") == "X-A: v  Injected: 1\r\nX-B: ok\r\nHost: h \r\n"
    assert BackendRequest("GET", "/", [], fields=[]).head_lines("h") == "Host: h\r\n"
    given = BackendRequest("GET", "/", [], headers=CIMultiDict(A="1"))  # hooks' tests build it with a mapping
    assert given.fields is None and given.headers["A"] == "1"


def test_compiled_mapping_steps_give_what_apply_mapping_gives() -> None:
    """The one-pass mapping over compiled steps (plain headers) matches the general one: path params, query
    pairs and their text (constants encoded once), header values cleaned, defaults only when omitted."""
    params = (
        BackendParam("PATH", "item", None, ("PATH", "id"), None),
        BackendParam("QUERY", "q x", None, ("QUERY", "q"), None),
        BackendParam("QUERY", "k", "a b&c", None, None),
        BackendParam("HEADER", "X-Const", "c\r\n1", None, None),
        BackendParam("HEADER", "X-From-Query", None, ("QUERY", "evil"), None),
        BackendParam("HEADER", "X-Sys", None, None, lambda c: c.request_id),
        BackendParam("HEADER", "X-None", None, None, lambda c: None),
        BackendParam("PATH", "fixed", "f", None, None),
    )
    plan = MappingPlan(params, frozenset({"q", "q x", "k", "evil"}),
                       frozenset({"x-const", "x-from-query", "x-sys", "x-none", "x-def", "x-given"}),
                       (("QUERY", "page"), ("HEADER", "X-Def"), ("QUERY", "given"), ("HEADER", "X-Given")))
    assert plan.plain_headers and len(plan.steps) == len(params) + 4
    c = ctx("/a/7?q=v%201&evil=a%0D%0Ab&given=1", X_Given="2")
    c.query["q"], c.query["evil"] = "v 1", "a\r\nb"
    c.params = {("QUERY", "page"): "1", ("HEADER", "X-Def"): "d", ("QUERY", "given"): "0",
                ("HEADER", "X-Given"): "0"}
    fields: list[tuple[str, str]] = []
    path_params, query, text = apply_mapping_into(c, plan, fields)
    want_path, want_query, want_headers = apply_mapping(c, plan)
    assert path_params == want_path == {"item": "7", "fixed": "f"}
    assert query == want_query == [("q x", "v 1"), ("k", "a b&c"), ("page", "1")]
    assert text == "q%20x=v%201&k=a%20b%26c&page=1"
    assert fields == [(k, v.replace("\r", " ").replace("\n", " ")) for k, v in want_headers] == [
        ("X-Const", "c  1"), ("X-From-Query", "a  b"), ("X-Sys", "rid"), ("X-Def", "d")]
    breq = build_backend_request(c, None, "GET", plan, UriTemplate.parse("/i/{item}/{fixed}"))  # type: ignore[arg-type]
    assert breq.path == "/i/7/f" and breq.query_text == "given=1&q%20x=v%201&k=a%20b%26c&page=1"
    assert MappingPlan((), frozenset(), frozenset()).steps == ()
