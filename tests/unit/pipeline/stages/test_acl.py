"""ip_acl and domain_acl stages: compiled per publication from acls + acl_bindings."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import RELEASE, mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context, run_stage, stage_of


def _doc(*acls: dict[str, Any]) -> dict[str, Any]:
    doc = snapshot([mock_api("a", "/a"), mock_api("b", "/b")], acls=list(acls))
    doc["acl_bindings"] = [{"id": f"bind-{a['id']}", "acl_id": a["id"], "publish_id": f"p-a-{RELEASE}"}
                           for a in acls]
    return doc


def _acl(acl_id: str, acl_type: str, value: str, entity: str = "IP") -> dict[str, Any]:
    return {"id": acl_id, "acl_name": f"acl_{acl_id}", "acl_type": acl_type, "entity_type": entity, "acl_value": value}


async def test_ip_acl_deny_and_permit() -> None:
    rt = compile_doc(_doc(_acl("x", "DENY", "127.0.0.0/8")))
    stage = stage_of(endpoint(rt, "a"), "ip_acl")
    assert stage is not None and stage_of(endpoint(rt, "b"), "ip_acl") is None  # bound to "a" only
    err = await run_stage(stage, request_context(rt, api_id="a"))
    assert err is not None and (err.code, err.status) == ("APIG.0402", 403)
    assert await run_stage(stage, request_context(rt, api_id="a", peer="10.1.2.3")) is None


async def test_domain_acl_checks_the_account() -> None:
    rt = compile_doc(_doc(_acl("d", "PERMIT", "acme", entity="DOMAIN")))
    stage = stage_of(endpoint(rt, "a"), "domain_acl")
    assert stage is not None and stage_of(endpoint(rt, "a"), "ip_acl") is None
    ctx = request_context(rt, api_id="a")
    err = await run_stage(stage, ctx)
    assert err is not None and err.code == "APIG.0306"  # no account on this call
    ctx.user_name = "other"
    err = await run_stage(stage, ctx)
    assert err is not None and err.code == "APIG.0302"
    ctx.user_name = "acme"
    assert await run_stage(stage, ctx) is None


async def test_ip_acl_remembers_each_address_verdict_within_bounds() -> None:
    from gateway.pipeline.stages import acl as acl_mod

    rt = compile_doc(_doc(_acl("p", "PERMIT", "10.0.0.0/8")))
    stage = stage_of(endpoint(rt, "a"), "ip_acl")
    assert stage is not None
    assert stage(request_context(rt, api_id="a", peer="10.1.2.3")) is None  # a plain function: nothing to await
    for _ in range(2):  # first sight and remembered: the same answers
        assert await run_stage(stage, request_context(rt, api_id="a", peer="10.1.2.3")) is None
        err = await run_stage(stage, request_context(rt, api_id="a", peer="192.0.2.1"))
        assert err is not None and err.code == "APIG.0402"
        err = await run_stage(stage, request_context(rt, api_id="a", peer="not-an-ip"))
        assert err is not None and err.code == "APIG.0401"
    for i in range(acl_mod.IP_VERDICTS_MAX + 10):  # many callers: bounded memory, still the right verdicts
        assert await run_stage(stage, request_context(rt, api_id="a", peer=f"10.0.{i // 256}.{i % 256}")) is None
    err = await run_stage(stage, request_context(rt, api_id="a", peer="192.0.2.1"))
    assert err is not None and err.code == "APIG.0402"
