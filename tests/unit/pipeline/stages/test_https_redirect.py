"""https_redirect pre-route: plain HTTP on a domain with is_http_redirect_to_https gets 301/308 to HTTPS."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, request_context


def _doc(flag: bool) -> dict:
    doc = snapshot([mock_api("a", "/a")])
    doc["groups"][0]["url_domains"] = [{"domain": "legacy.example.test", "is_http_redirect_to_https": flag}]
    return doc


def test_redirect_only_for_flagged_domains() -> None:
    assert compile_doc(_doc(False)).pre_route == ()  # nothing per request when no domain asks for it
    rt = compile_doc(_doc(True))
    (redirect,) = rt.pre_route
    get = request_context(rt, "GET", "/a?x=1", headers={"Host": "legacy.example.test"})
    resp = redirect(get)
    assert resp is not None and (resp.status, resp.headers["Location"]) == (301, "https://legacy.example.test/a?x=1")
    post = request_context(rt, "POST", "/a", headers={"Host": "legacy.example.test:8080"})
    resp = redirect(post)
    assert resp is not None and resp.status == 308  # method and body kept
    assert redirect(request_context(rt, "GET", "/a")) is None  # another host
