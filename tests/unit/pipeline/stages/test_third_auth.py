"""third_auth stage and its carry-headers plan stage (a deny rule refuses without calling the service)."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import http_api, snapshot
from tests.support.plugins_helpers import bind, plugin
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


def _content(**extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        # a closed port: these tests never reach the service
        "auth_request": {"method": "POST", "protocol": "HTTP", "url_domain": "127.0.0.1:9", "path": "/check",
                         "timeout": 2, "vpc_channel_enabled": 2, "vpc_channel_info": None},
        "identities": {"headers": [{"name": "token"}]},
        "carry_resp_headers": ["x-user"],
        "simple_auth_mode_enabled": False,
        "match_auth": {"key": "x-message-result", "value": "success"},
        "return_resp_body_enabled": True,
    }
    content.update(extra)
    return content


def _runtime(content: dict[str, Any]):  # type: ignore[no-untyped-def]
    return compile_doc(snapshot([http_api("a", "/a", "127.0.0.1:9"), http_api("b", "/b", "127.0.0.1:9")],
                                plugins=[plugin("t", "third_auth", content)], plugin_bindings=[bind("x", "t", "a")]))


async def test_deny_rule_and_missing_identity() -> None:
    rt = _runtime(_content(rule_enabled=True, rule_type="deny",
                           parameters=[{"name": "ua", "type": "header", "value": "User-Agent"}],
                           rules=[{"rule_name": "bots", "match_regex": '["OR", ["ua", "~", ".*bot"]]'}]))
    stage = stage_of(endpoint(rt, "a"), "third_auth")
    assert stage is not None and stage_of(endpoint(rt, "b"), "third_auth") is None
    err = await run_stage(stage, request_context(rt, headers={"token": "t", "User-Agent": "evilbot"}, api_id="a"))
    assert err is not None and (err.code, err.status) == ("APIG.0314", 403)


def test_carried_headers_become_a_request_hook() -> None:
    rt = _runtime(_content())
    assert len(endpoint(rt, "a").backend.request_hooks) == 1
    assert endpoint(rt, "b").backend.request_hooks == ()
