"""The v2 resource tables and the draft/version helpers, without sockets."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from gateway.control.common import AdminError
from gateway.control.v2 import versions
from gateway.control.v2.resources import BINDINGS, REFERENCES, RESOURCES, cascade_delete, references
from gateway.pipeline.chain import COLLECTIONS
from tests.support.helpers import RELEASE, mock_api, snapshot

V2_DIR = Path(__file__).resolve().parents[3] / "gateway" / "control" / "v2"


@pytest.mark.parametrize("module", ["crud.py", "bindings.py"])
def test_generic_handlers_never_branch_on_a_collection_name(module: str) -> None:
    def names_a_string(node: ast.expr) -> bool:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_a_string(e) for e in node.elts)
        return isinstance(node, ast.Constant) and isinstance(node.value, str)

    tree = ast.parse((V2_DIR / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(names_a_string(c) for c in node.comparators):
            left = ast.unparse(node.left)
            assert not left.endswith("collection"), f"{module}:{node.lineno} {left}"
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict):  # {"apis": ...}[res.collection]
            assert not ast.unparse(node.slice).endswith("collection"), f"{module}:{node.lineno}"


def test_every_reference_names_known_collections_and_every_parent_is_declared() -> None:
    for ref in references():
        assert ref.child in COLLECTIONS and ref.parent in COLLECTIONS, ref
    for res in RESOURCES:
        if res.parent is not None:
            assert res.parent_ref() is not None, res.path
    assert len({b.collection for b in BINDINGS}) == len(BINDINGS)
    assert len({(r.child, r.field, r.parent) for r in REFERENCES}) == len(REFERENCES)


def test_cascade_follows_the_declared_references() -> None:
    doc: dict[str, Any] = snapshot([mock_api("a1", "/one"), mock_api("a2", "/two")])
    doc["throttles"] = [{"id": "t1", "name": "t_one"}]
    doc["throttle_bindings"] = [{"id": "b1", "policy_id": "t1", "publish_id": f"p-a1-{RELEASE}"},
                                {"id": "b2", "policy_id": "t1", "publish_id": f"p-a2-{RELEASE}"}]
    doc["api_versions"] = [{"id": "v1", "api_id": "a1", "env_id": RELEASE}]
    doc["api_drafts"] = [{"id": "a1", "definition": {}}]
    cascade_delete(doc, "apis", {"a1"})  # API -> publication -> binding; its versions and draft
    assert [a["id"] for a in doc["apis"]] == ["a2"]
    assert [b["id"] for b in doc["throttle_bindings"]] == ["b2"]
    assert doc["api_versions"] == [] and doc["api_drafts"] == []
    cascade_delete(doc, "groups", {"g1"})  # a group takes everything below it
    assert doc["apis"] == [] and doc["publishes"] == [] and doc["throttle_bindings"] == []
    assert [t["id"] for t in doc["throttles"]] == ["t1"]  # policies are not owned by a group


def test_drafts_publish_versions_and_switch() -> None:
    doc: dict[str, Any] = snapshot([mock_api("a1", "/one", "v1")])
    edited = {**mock_api("a1", "/one", "v2")}
    assert versions.write_api(doc, "a1", edited) is None  # published: a draft, not the served definition
    assert doc["apis"][0]["mock_info"]["result_content"] == "v1"
    assert versions.current_definition(doc, "a1")["mock_info"]["result_content"] == "v2"
    served = versions.promote_draft(doc, "a1", RELEASE)
    assert served["mock_info"]["result_content"] == "v2" and doc["api_drafts"] == []
    versions.record_version(doc, "a1", RELEASE, "ver2", "2026-01-01T00:00:00.000000Z", None)
    assert [(v["id"], v["status"], v["version_no"]) for v in doc["api_versions"]] == [("ver2", 1, "20260101000000")]
    for i in range(12):  # at most 10 per API and environment
        versions.record_version(doc, "a1", RELEASE, f"x{i}", "2026-01-02T00:00:00.000000Z", None)
    assert len(doc["api_versions"]) == versions.KEEP_PER_ENV
    assert [v["status"] for v in doc["api_versions"]].count(1) == 1
    bad = {**edited, "req_method": "FETCH"}
    with pytest.raises(AdminError) as err:
        versions.write_api(doc, "a1", bad)
    assert err.value.code == "APIG.2012" and any(p.startswith("req_method:") for p in err.value.extra["problems"])


def test_switching_serves_the_version_in_its_environment_only() -> None:
    doc: dict[str, Any] = snapshot([mock_api("a1", "/one", "old")])
    versions.record_version(doc, "a1", RELEASE, "old", "2026-01-01T00:00:00.000000Z", None)
    doc["apis"] = [mock_api("a1", "/one", "new")]
    versions.record_version(doc, "a1", RELEASE, "new", "2026-01-02T00:00:00.000000Z", None)
    old = next(v for v in doc["api_versions"] if v["id"] == "old")
    record = versions.switch_to(doc, old)
    # the publication carries the version's definition; the shared record (what an editor sees) is unchanged
    assert record["version_id"] == "old" and record["api_definition"]["mock_info"]["result_content"] == "old"
    assert doc["apis"][0]["mock_info"]["result_content"] == "new"
    assert versions.current_definition(doc, "a1")["mock_info"]["result_content"] == "new"
    # switching back to the definition in ``apis`` drops the copy
    new = next(v for v in doc["api_versions"] if v["id"] == "new")
    assert "api_definition" not in versions.switch_to(doc, new)
    record = versions.switch_to(doc, old)
    assert {v["id"]: v["status"] for v in doc["api_versions"]} == {"old": 1, "new": 2}


def test_publishing_pins_the_other_environments_in_one_group() -> None:
    doc: dict[str, Any] = snapshot([mock_api("a1", "/one", "v1")], envs=["TEST"], publish_in=["env-test"])
    doc["groups"].append({"id": "g2", "name": "group_two"})
    versions.write_api(doc, "a1", mock_api("a1", "/one", "v2"))
    versions.promote_draft(doc, "a1", "env-test")
    release, test = doc["publishes"]
    assert release["api_definition"]["mock_info"]["result_content"] == "v1" and "api_definition" not in test
    assert doc["apis"][0]["mock_info"]["result_content"] == "v2"
    versions.promote_draft(doc, "a1", RELEASE)  # nothing to publish: the pin stays until RELEASE is replaced
    assert doc["publishes"][0] is release
    # a draft moving the API to another group cannot be published beside the other environment's definition
    versions.write_api(doc, "a1", mock_api("a1", "/one", "v3", group_id="g2"))
    before = doc["publishes"]
    with pytest.raises(AdminError) as err:
        versions.promote_draft(doc, "a1", "env-test")
    assert err.value.code == "APIG.2012" and "parameterName:group_id" in err.value.msg
    assert doc["publishes"] is before and doc["apis"][0]["group_id"] == "g1"
