"""Plug-in snapshots at load time: content shapes, per-type validation, binding rules, unsupported types."""

from __future__ import annotations

import pytest

from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import Settings
from gateway.model.services import Services
from tests.support.helpers import RELEASE, mock_api, snapshot
from tests.support.plugins_helpers import bind, plugin

CORS = {"allow_origin": "*", "allow_methods": "GET,POST,PUT", "allow_headers": "Content-Type,Accept",
        "expose_headers": "X-Request-Id", "max_age": 172800, "allow_credentials": True}


def problems_of(doc: dict) -> list[str]:
    with pytest.raises(SnapshotError) as exc:
        build_runtime(doc, Services(Settings()))
    return exc.value.problems


def load(doc: dict):
    return build_runtime(doc, Services(Settings()))


def test_content_as_string_object_or_double_escaped() -> None:
    # the seed's §3.27.1 response example escapes the JSON once more than it should: accepted
    escaped = '{\\"allow_origin\\": \\"*\\", \\"allow_methods\\": \\"GET\\"}'
    doc = snapshot([mock_api("a", "/a"), mock_api("b", "/b"), mock_api("c", "/c")],
                   plugins=[plugin("p1", "cors", CORS), plugin("p2", "cors", CORS, as_string=False),
                            plugin("p3", "cors", escaped)],
                   plugin_bindings=[bind("b1", "p1", "a"), bind("b2", "p2", "b"), bind("b3", "p3", "c")])
    rt = load(doc)
    for api in ("a", "b", "c"):
        assert rt.endpoints[(api, RELEASE)].cors is not None


def test_vendor_binding_shape_env_and_api_ids() -> None:
    doc = snapshot([mock_api("a", "/a"), mock_api("b", "/b")],
                   plugins=[{"plugin_id": "p1", "plugin_name": "Cors Plug-in", "plugin_type": "cors",
                             "plugin_scope": "app", "plugin_content": CORS}],
                   plugin_bindings=[{"plugin_attach_id": "x", "plugin_id": "p1", "env_id": RELEASE,
                                     "api_ids": ["a", "b"], "attached_time": "2022-11-02T12:31:23Z"}])
    rt = load(doc)
    assert rt.endpoints[("a", RELEASE)].cors is rt.endpoints[("b", RELEASE)].cors


def test_unsupported_types_are_rejected_clearly() -> None:
    rate = {"scope": "basic", "default_time_unit": "minute", "default_interval": 1, "api_limit": 50}
    kafka = {"broker_list": ["127.0.0.1:9092"], "topic": "t"}
    doc = snapshot([mock_api("a", "/a")], plugins=[plugin("r", "rate_limit", rate), plugin("k", "kafka_log", kafka)])
    load(doc)  # every vendor type is implemented now
    probs = problems_of(snapshot([mock_api("a", "/a")], plugins=[plugin("x", "proxy_cache", {})]))
    assert any(p.startswith("plugins[0].plugin_type: must be one of cors") for p in probs)


def test_bad_contents_report_paths() -> None:
    doc = snapshot(
        [mock_api("a", "/a")],
        plugins=[
            plugin("p0", "cors", "{not json"),
            plugin("p1", "cors", {"allow_origin": "*", "allow_methods": "GET,FETCH", "max_age": "x"}),
            plugin("p2", "set_resp_headers", {"response_headers": [{"name": "X-Request-Id", "value": "1"},
                                                                   {"name": "x-a", "value": "1", "action": "zap"}]}),
            plugin("p3", "breaker", {"breaker_condition": {"breaker_type": "condition", "unhealthy_condition": "??",
                                                           "time_window": 10, "open_breaker_time": 5,
                                                           "unhealthy_threshold": 1}}),
            plugin("p4", "third_auth", {"auth_request": {"url_domain": "auth.local:port", "path": "/check"},
                                        "rule_enabled": True, "rule_type": "allow",
                                        "parameters": [{"name": "reqPath", "type": "path", "value": "reqPath"}],
                                        "rules": [{"rule_name": "r", "match_regex": '["OR", ["nope", "=", "/x"]]'}]}),
            plugin("p5", "breaker", {"breaker_condition": {"breaker_type": "timeout", "time_window": 10,
                                                           "open_breaker_time": 5, "unhealthy_threshold": 1},
                                     "downgrade_rules": [{"rule_name": "x", "match_regex": "[]"}]}),
        ],
    )
    probs = problems_of(doc)
    assert any(p.startswith("plugins[0].plugin_content: is not valid JSON") for p in probs)
    assert "plugins[1].plugin_content.max_age: must be an integer" in probs
    assert any(p.startswith("plugins[1].plugin_content.allow_methods: 'FETCH'") for p in probs)
    assert any(p.startswith("plugins[2].plugin_content.response_headers[0].name: 'X-Request-Id' is a gateway-owned")
               for p in probs)
    assert any(p.startswith("plugins[2].plugin_content.response_headers[1].action: must be one of") for p in probs)
    assert any(p.startswith("plugins[3].plugin_content.breaker_condition.unhealthy_condition:") for p in probs)
    assert any(p.startswith("plugins[4].plugin_content.auth_request.url_domain:") for p in probs)
    assert any(p.startswith("plugins[4].plugin_content.rules[0].match_regex: unknown parameter 'nope'")
               for p in probs)
    assert any(p.startswith("plugins[5].plugin_content.downgrade_rules: conditional downgrade rules are not supported")
               for p in probs)


def test_binding_rules() -> None:
    doc = snapshot(
        [mock_api("a", "/a"), mock_api("b", "/b", method="DELETE")],
        envs=["TEST"],
        plugins=[plugin("p1", "cors", CORS), plugin("p2", "cors", CORS)],
        plugin_bindings=[bind("b1", "p1", "a"), bind("b2", "p2", "a"),  # two cors plug-ins on one publication
                         {"id": "b3", "plugin_id": "p1", "env_id": "env-test", "api_id": "a"},  # not published
                         {"id": "b4", "plugin_id": "nope", "publish_id": "p-a-" + RELEASE},
                         {"id": "b5", "plugin_id": "p2", "publish_id": "p-zz"},
                         bind("b6", "p1", "b")],  # DELETE is not in allow_methods
    )
    probs = problems_of(doc)
    assert any(p.startswith("plugin_bindings[1]: API 'a' already has a cors plug-in") for p in probs)
    assert any(p.startswith("plugin_bindings[2].api_id: API 'a' is not published in environment 'env-test'")
               for p in probs)
    assert "plugin_bindings[3].plugin_id: unknown plug-in 'nope'" in probs
    assert any(p.startswith("plugin_bindings[4].publish_id: unknown publication 'p-zz'") for p in probs)
    assert any(p.startswith("plugins[0].plugin_content.allow_methods: does not include DELETE") for p in probs)


def test_set_resp_headers_shapes_are_normalised() -> None:
    shapes = [
        {"response_headers": [{"name": "x-demo", "value": "sss"}, {"action": "append"}]},  # §3.27.1 request
        {"response_headers": {"name": "x-demo", "value": "sss", "action": "append"}},  # §3.27.1 response
        {"response_headers": [{"name": "x-demo", "value": "sss"}], "action": "append"},  # §3.27.2 request
    ]
    apis = [mock_api(f"a{i}", f"/a{i}") for i in range(3)]
    doc = snapshot(apis, plugins=[plugin(f"p{i}", "set_resp_headers", c) for i, c in enumerate(shapes)],
                   plugin_bindings=[bind(f"b{i}", f"p{i}", f"a{i}") for i in range(3)])
    rt = load(doc)
    for i in range(3):
        assert len(rt.endpoints[(f"a{i}", RELEASE)].response_hooks) == 1


def test_duplicate_names_and_ids() -> None:
    doc = snapshot([mock_api("a", "/a")],
                   plugins=[plugin("p1", "cors", CORS, name="same"), plugin("p2", "cors", CORS, name="same"),
                            {"id": "p3", "plugin_id": "other", "plugin_name": "abc", "plugin_type": "cors",
                             "plugin_content": CORS}])
    probs = problems_of(doc)
    assert any(p.startswith("plugins[1].plugin_name: duplicate plug-in name 'same'") for p in probs)
    assert "plugins[2].plugin_id: differs from id 'p3'" in probs


def test_seed_examples_load() -> None:
    """The seed's §3.27.1 request examples for cors, set_resp_headers and breaker (escaping repaired)."""
    seed = [
        plugin("c", "cors", '{"allow_origin": "*", "allow_methods": "GET,POST,PUT", "allow_headers": '
                            '"Content-Type,Accept,Accept-Ranges,Cache-Control", "expose_headers": '
                            '"X-Request-Id,X-Apig-Latency", "max_age": 172800, "allow_credentials": true}'),
        plugin("h", "set_resp_headers", '{"response_headers": [{"name": "x-demo", "value": "sss"}, '
                                        '{"action": "append"}]}'),
        plugin("b", "breaker", '{"breaker_condition": {"breaker_type": "timeout", "breaker_mode": "counter", '
                               '"unhealthy_condition": "", "unhealthy_threshold": 30, "min_call_threshold": 20, '
                               '"unhealthy_percentage": 51, "time_window": 15, "open_breaker_time": 15}, '
                               '"downgrade_default": null, "downgrade_parameters": null, "downgrade_rules": null, '
                               '"scope": "basic"}'),
    ]
    doc = snapshot([mock_api("a", "/a")], plugins=seed,
                   plugin_bindings=[bind("b1", "c", "a"), bind("b2", "h", "a"), bind("b3", "b", "a")])
    rt = load(doc)
    ep = rt.endpoints[("a", RELEASE)]
    assert ep.cors is not None and len(ep.response_hooks) == 2  # Vary: Origin + set_resp_headers
    assert type(ep.backend.target).__name__ == "BreakerTarget"


def test_cors_methods_are_checked_against_the_definition_each_environment_serves() -> None:
    doc = snapshot([mock_api("a", "/a")], envs=["TEST"], publish_in=["env-test"],
                   plugins=[plugin("p1", "cors", CORS)], plugin_bindings=[bind("b1", "p1", "a", "env-test")])
    load(doc)
    doc["publishes"][1]["api_definition"] = mock_api("a", "/a", method="DELETE")  # TEST serves another version
    assert any(p.startswith("plugins[0].plugin_content.allow_methods: does not include DELETE")
               for p in problems_of(doc))
    doc["publishes"][1].pop("api_definition")
    doc["publishes"][0]["api_definition"] = mock_api("a", "/a", method="DELETE")  # RELEASE has no cors plug-in
    load(doc)
