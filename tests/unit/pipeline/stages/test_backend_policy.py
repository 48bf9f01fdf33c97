"""Backend selection: a policy's conditions compiled into a matcher; the first match replaces the default."""

from __future__ import annotations

from tests.support.helpers import mock_api, snapshot
from tests.support.stage_harness import compile_doc, endpoint, request_context


def test_header_condition_selects_the_policy_backend() -> None:
    policy = {"name": "beta", "effect_mode": "ANY", "result_content": "beta",
              "conditions": [{"condition_origin": "param", "condition_value": "beta", "condition_type": "exact",
                              "req_param_name": "X-Track"}]}
    api = mock_api("a", "/a", req_params=[{"name": "X-Track", "location": "HEADER", "type": "STRING", "required": 2}],
                   policy_mocks=[policy])
    rt = compile_doc(snapshot([api]))
    ep = endpoint(rt, "a")
    ctx = request_context(rt, api_id="a")
    assert ep.select_backend(ctx) is ep.backend
    ctx.params[("HEADER", "X-Track")] = "beta"
    chosen = ep.select_backend(ctx)
    assert chosen is not ep.backend and chosen.name == "beta"
