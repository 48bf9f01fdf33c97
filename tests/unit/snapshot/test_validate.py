"""Snapshot validation: every problem listed as path: reason, nothing half-loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.compiler import build_runtime
from gateway.core.errors import SnapshotError
from gateway.core.settings import Settings
from gateway.model.services import Services
from gateway.snapshot.load import load_path, parse_bytes
from tests.support.helpers import RELEASE, http_api, mock_api, snapshot


def problems_of(doc: dict) -> list[str]:
    with pytest.raises(SnapshotError) as exc:
        build_runtime(doc, Services(Settings()))
    return exc.value.problems


def test_example_config_is_valid() -> None:
    rt = build_runtime(load_path(Path(__file__).resolve().parents[3] / "config"), Services(Settings()))
    assert rt.counts["publishes"] >= 7


def test_all_problems_are_reported_together() -> None:
    api = http_api("a1", "/x", "127.0.0.1:1", timeout=0)
    api["match_mode"] = "FUZZY"
    api["backend_api"]["req_method"] = "FETCH"
    api["unknown_field"] = 1
    doc = snapshot([api, mock_api("a2", "/y")])
    doc["publishes"].append({"publish_id": "p-x", "api_id": "nope", "env_id": RELEASE})
    probs = problems_of(doc)
    assert "apis[0].backend_api.timeout: must be 1..600000" in probs
    assert "apis[0].match_mode: must be one of SWA, NORMAL" in probs
    assert any(p.startswith("apis[0].backend_api.req_method: must be one of GET") for p in probs)
    assert "apis[0].unknown_field: unknown field" in probs
    assert any(p.startswith("publishes[") and "unknown API 'nope'" in p for p in probs)


def test_unknown_top_level_and_output_only_fields() -> None:
    doc = snapshot([mock_api("a1", "/y", register_time="2020-01-01", group_name="x")])
    build_runtime(doc, Services(Settings()))  # output-only fields are ignored
    doc["surprise"] = []
    assert problems_of(doc) == ["surprise: unknown top-level key"]


def test_references_resolve() -> None:
    api = mock_api("a1", "/y")
    api["group_id"] = "missing"
    doc = snapshot([api])
    doc["env_variables"] = [{"id": "v", "group_id": "g1", "env_id": "env-nope", "variable_name": "abc",
                             "variable_value": "1"}]
    probs = problems_of(doc)
    assert "apis[0].group_id: unknown group 'missing'" in probs
    assert ("env_variables[0].env_id: unknown environment 'env-nope' "
            "(known environment ids: DEFAULT_ENVIRONMENT_RELEASE_ID)") in probs


def test_env_variable_needs_a_value_in_every_published_environment() -> None:
    api = http_api("a1", "/x", "#host#")
    doc = snapshot([api], envs=["TEST"], publish_in=["env-test"])
    doc["env_variables"] = [{"id": "v1", "group_id": "g1", "env_id": RELEASE, "variable_name": "host",
                             "variable_value": "127.0.0.1:1"}]
    probs = problems_of(doc)
    assert probs == ["apis[0].backend_api.url_domain: variable #host# has no value in environment 'TEST'"]


def test_duplicate_routes_and_ids() -> None:
    doc = snapshot([mock_api("a1", "/u/{id}"), mock_api("a2", "/u/{uid}")])
    probs = problems_of(doc)
    assert any("same method, path and match mode as API 'a1'" in p for p in probs)
    doc = snapshot([mock_api("a1", "/a"), mock_api("a1", "/b")])
    assert any("apis[1].id: duplicate id 'a1'" in p for p in problems_of(doc))


def test_parameter_rules() -> None:
    api = http_api("a1", "/x/{id}", "127.0.0.1:1", backend_uri="/b/{other}")
    api["req_params"] = [{"name": "id", "location": "PATH", "type": "STRING"},
                         {"name": "x-stage", "location": "HEADER", "type": "STRING"},
                         {"name": "ghost", "location": "PATH", "type": "STRING"}]
    api["backend_params"] = [{"name": "q", "location": "QUERY", "origin": "REQUEST", "value": "nope"},
                             {"name": "s", "location": "HEADER", "origin": "SYSTEM", "value": "$context.bogus"}]
    probs = problems_of(snapshot([api]))
    assert "apis[0].req_params[1].name: 'x-stage' is a reserved name" in probs
    assert "apis[0].req_params[2].name: PATH parameter 'ghost' is not in req_uri" in probs
    assert "apis[0].backend_params[0].value: no request parameter named 'nope'" in probs
    assert "apis[0].backend_api.req_uri: path parameter {other} has no value" in probs
    assert "apis[0].backend_params[1].value: unknown system parameter '$context.bogus'" in probs


def test_backend_kind_requirements() -> None:
    api = mock_api("a1", "/x")
    del api["mock_info"]
    grpc = mock_api("a2", "/y", backend_type="GRPC")
    probs = problems_of(snapshot([api, grpc]))
    assert "apis[0].mock_info: is required when backend_type is MOCK" in probs
    assert "apis[1].backend_api: is required when backend_type is GRPC" in probs


def test_group_response_types_checked() -> None:
    doc = snapshot([mock_api("a1", "/x")], responses=[
        {"id": "r1", "name": "resp", "responses": {"NOPE": {"status": 400}, "THROTTLED": {"status": 444}}}])
    doc["groups"][0]["response_id"] = "r1"
    probs = problems_of(doc)
    assert "responses[0].responses.NOPE: unknown response type" in probs
    assert "responses[0].responses.THROTTLED.status: 444 is not allowed" in probs


def test_yaml_and_json_and_directory_merge(tmp_path: Path) -> None:
    assert parse_bytes(b'{"apis": []}') == {"apis": []}
    assert parse_bytes(b"apis: []\n") == {"apis": []}
    with pytest.raises(SnapshotError):
        parse_bytes(b"- just\n- a list\n")
    (tmp_path / "a.yaml").write_text("groups:\n  - {id: g1, name: group_one}\n")
    (tmp_path / "b.json").write_text('{"apis": [], "groups": [{"id": "g2", "name": "group_two"}]}')
    (tmp_path / "notes.txt").write_text("ignored")
    merged = load_path(tmp_path)
    assert [g["id"] for g in merged["groups"]] == ["g1", "g2"]


# --- a publication's own published copy of the API (publishes[].api_definition) ---------------------------

def _two_envs(copy: dict) -> dict:
    doc = snapshot([mock_api("a1", "/one", "shared")], envs=["TEST"], publish_in=["env-test"])
    doc["publishes"][1]["api_definition"] = copy
    return doc


def test_published_copy_is_what_its_environment_serves() -> None:
    rt = build_runtime(_two_envs(mock_api("a1", "/two", "copy", method="POST")), Services(Settings()))
    release, test = rt.endpoints[("a1", RELEASE)], rt.endpoints[("a1", "env-test")]
    assert (release.method, release.req_uri) == ("GET", "/one")
    assert (test.method, test.req_uri) == ("POST", "/two")
    assert rt.counts["publishes"] == 2


def test_published_copy_is_validated_like_an_api_with_field_paths() -> None:
    bad = mock_api("a1", "/x/{id}", "copy", method="FETCH", auth_type="AUTHORIZER", authorizer_id="nope")
    bad["mock_info"]["status_code"] = 999
    bad["req_params"] = [{"name": "other", "location": "PATH", "type": "STRING"}]
    problems = problems_of(_two_envs(bad))
    p = "publishes[1].api_definition"
    assert any(x.startswith(f"{p}.req_method: must be one of") for x in problems), problems
    assert any(x.startswith(f"{p}.mock_info.status_code: must be 200..599") for x in problems), problems
    assert any(x.startswith(f"{p}.req_params[0].name: PATH parameter 'other'") for x in problems), problems
    assert f"{p}.authorizer_id: unknown authorizer 'nope'" in problems, problems  # a stage's check
    assert not any(x.startswith("apis[") for x in problems), problems  # the shared record is fine


def test_published_copy_belongs_to_its_api_and_group() -> None:
    problems = problems_of(_two_envs(mock_api("other", "/one", group_id="g2")))
    assert any(x.startswith("publishes[1].api_definition.id: must be 'a1'") for x in problems), problems
    assert any(x.startswith("publishes[1].api_definition.group_id: must be 'g1'") for x in problems), problems
    doc = _two_envs(mock_api("a1", "/one"))
    doc["publishes"][1]["api_definition"] = "not an object"
    assert problems_of(doc) == ["publishes[1].api_definition: must be an object"]


def test_published_copy_routes_and_variables_are_checked_in_its_environment() -> None:
    doc = _two_envs(mock_api("a1", "/b", "copy"))
    doc["apis"].append(mock_api("a2", "/b", "other"))
    doc["publishes"].append({"publish_id": "p-a2-test", "api_id": "a2", "env_id": "env-test"})
    problems = problems_of(doc)
    assert any(x.startswith("apis[1]: same method, path and match mode as API 'a1' in environment 'TEST'")
               for x in problems), problems
    # the same route in RELEASE is fine: there a1 serves /one
    doc["publishes"].pop()
    doc["publishes"].append({"publish_id": "p-a2", "api_id": "a2", "env_id": RELEASE})
    build_runtime(doc, Services(Settings()))
    doc = _two_envs(http_api("a1", "/one", "#backend_host#"))
    assert any(x.startswith("publishes[1].api_definition.backend_api.url_domain: variable #backend_host# has no "
                            "value in environment 'TEST'") for x in problems_of(doc)), problems_of(doc)


def test_only_the_named_elements_have_their_fields_checked() -> None:
    """An incremental change validates its partial document with ``only`` = the new elements and the touched
    APIs: the others (unchanged since they were validated) are not checked again in themselves; route
    conflicts are checked for all."""
    from gateway.compiler import validate

    doc = snapshot([mock_api("a1", "/a"), {**mock_api("a2", "/b"), "req_method": "BREW"}])
    good, bad_fields = doc["apis"]
    with pytest.raises(SnapshotError) as exc:
        validate(doc, only={id(bad_fields)})
    assert any("apis[1].req_method" in p for p in exc.value.problems)
    validate(doc, only={id(good)})  # a2's fields were checked when it entered
    dangling = snapshot([mock_api("a1", "/a"), {**mock_api("a3", "/c"), "group_id": "nope"}])
    with pytest.raises(SnapshotError) as exc:
        validate(dangling, only={id(dangling["apis"][1])})
    assert any("apis[1].group_id" in p for p in exc.value.problems)
    clash = snapshot([mock_api("a1", "/same"), mock_api("a2", "/same")])
    with pytest.raises(SnapshotError) as exc:  # route conflicts are checked for every API
        validate(clash, only=set())
    assert any("same method, path" in p for p in exc.value.problems)
