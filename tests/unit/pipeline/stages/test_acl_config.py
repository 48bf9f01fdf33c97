"""Config checks of ACLs, apps, AppCodes, authorizations, app ACLs and features; the IP-set compiler."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.compiler import validate
from gateway.core.errors import SnapshotError
from gateway.lib.ipset import IpSet, ip_key, parse_entry
from tests.support.auth_helpers import APP_CODE, app, grant
from tests.support.helpers import RELEASE, mock_api, snapshot


def _problems(**collections: Any) -> list[str]:
    doc = snapshot([mock_api("m1", "/m"), mock_api("m2", "/n")], **collections)
    with pytest.raises(SnapshotError) as exc:
        validate(doc)
    return exc.value.problems


def _ok(**collections: Any) -> None:
    validate(snapshot([mock_api("m1", "/m"), mock_api("m2", "/n")], **collections))


ACL_OK = {"id": "a1", "acl_name": "acl_one", "acl_type": "PERMIT", "entity_type": "IP", "acl_value": "10.0.0.1"}
P1 = f"p-m1-{RELEASE}"


def test_valid_document() -> None:
    _ok(acls=[ACL_OK, {**ACL_OK, "id": "a2", "entity_type": "DOMAIN", "acl_value": "acme,globex"}],
        acl_bindings=[{"id": "b1", "acl_id": "a1", "publish_id": P1},
                      {"id": "b2", "acl_id": "a2", "api_id": "m1", "env_id": RELEASE}],
        apps=[app("x1"), app("x2", key="other_key_2", register_time="2024-01-01T00:00:00Z")],
        app_codes=[{"id": "c1", "app_id": "x1", "app_code": APP_CODE}],
        app_auths=[grant("x1", "m1")],
        app_acls=[{"app_id": "x1", "app_acl_type": "DENY", "app_acl_values": ["192.168.0.100/28", "1.1.1.1-1.1.1.9"]}],
        features=[{"name": "real_ip_from_xff", "enable": True, "config": '{"enable": true, "xff_index": -1}'},
                  {"id": "f2", "name": "ratelimit", "enable": True, "config": "on", "update_time": "x"}])


@pytest.mark.parametrize(("acl", "reason"), [
    ({"acl_value": "10.0.0.1,not-an-ip"}, "acls[0].acl_value: 'not-an-ip' is not an IP address, range or CIDR block"),
    ({"acl_value": "10.0.0.9-10.0.0.1"}, "acls[0].acl_value: '10.0.0.9-10.0.0.1': range start is after its end"),
    ({"acl_value": "10.0.0.1-::1"}, "acls[0].acl_value: '10.0.0.1-::1' mixes IPv4 and IPv6"),
    ({"acl_value": ",".join(f"10.0.{i // 250}.{i % 250}" for i in range(101))},
     "acls[0].acl_value: at most 100 IP entries (has 101)"),
    ({"entity_type": "DOMAIN", "acl_value": "acme,12345"},
     "acls[0].acl_value: '12345': an account name cannot be digits only"),
    ({"entity_type": "DOMAIN", "acl_value": "x" * 65}, "acls[0].acl_value: "),
    ({"acl_type": "ALLOW"}, "acls[0].acl_type: must be one of PERMIT, DENY"),
    ({"entity_type": "DNS"}, "acls[0].entity_type: must be one of IP, DOMAIN, DOMAIN_ID"),
    ({"acl_name": "1bad"}, "acls[0].acl_name: does not match"),
    ({"acl_value": " , "}, "acls[0].acl_value: has no entries"),
])
def test_bad_acls(acl: dict[str, Any], reason: str) -> None:
    problems = _problems(acls=[{**ACL_OK, **acl}])
    assert any(p.startswith(reason) for p in problems), problems


def test_bad_bindings() -> None:
    dom = {**ACL_OK, "id": "a2", "entity_type": "IP", "acl_value": "10.0.0.2"}
    problems = _problems(acls=[ACL_OK, dom], acl_bindings=[
        {"id": "b1", "acl_id": "nope", "publish_id": P1},
        {"id": "b2", "acl_id": "a1", "publish_id": "p-missing"},
        {"id": "b3", "acl_id": "a1", "publish_id": P1},
        {"id": "b4", "acl_id": "a2", "publish_id": P1},
        {"id": "b5", "acl_id": "a1"},
        {"id": "b5", "acl_id": "a1", "api_id": "m2", "env_id": RELEASE},
    ])
    assert "acl_bindings[0].acl_id: unknown ACL 'nope'" in problems
    assert any(p.startswith("acl_bindings[1].publish_id: unknown publication 'p-missing'") for p in problems)
    assert f"acl_bindings[3]: publication '{P1}' already has a IP ACL (acl_bindings[2])" in problems
    assert "acl_bindings[4].publish_id: is required (or api_id and env_id)" in problems
    assert any(p.startswith("acl_bindings[5].id: duplicate id 'b5'") for p in problems), problems


def test_bad_apps_codes_auths_app_acls() -> None:
    problems = _problems(
        apps=[app("x1"), app("x2"), app("x3", key="short", secret="bad secret!"),
              app("x4", key="k4_abcdefg", status=3)],
        app_codes=[{"id": "c1", "app_id": "x1", "app_code": APP_CODE},
                   {"id": "c2", "app_id": "x2", "app_code": APP_CODE},
                   {"id": "c3", "app_id": "zz", "app_code": "tooshort"}],
        app_auths=[grant("x1", "m1"), grant("x1", "m1", auth_id="dup"), grant("zz", "nope", "env-nope")],
        app_acls=[{"app_id": "x1", "app_acl_type": "PERMIT", "app_acl_values": ["1.2.3.4/33"]},
                  {"app_id": "x1", "app_acl_type": "DENY", "app_acl_values": ["1.1.1.1"]},
                  {"app_id": "zz", "app_acl_type": "MAYBE", "app_acl_values": []}],
    )
    expected = [
        "apps[1].app_key: AppKey already used by apps[0]",
        "apps[2].app_key: length must be at least 8",
        "apps[2].app_secret: does not match",
        "apps[3].status: must be one of 1 = valid, 2 = frozen",
        "app_codes[1].app_code: AppCode already used by app 'x1' (app_codes[0])",
        "app_codes[2].app_id: unknown app 'zz'",
        "app_codes[2].app_code: length must be at least 64",
        "app_auths[1]: app 'x1' is already authorized for API 'm1' in environment",
        "app_auths[2].app_id: unknown app 'zz'",
        "app_auths[2].api_id: unknown API 'nope'",
        "app_auths[2].env_id: unknown environment 'env-nope'",
        "app_acls[0].app_acl_values[0]: '1.2.3.4/33' is not an IP address",
        "app_acls[1].app_id: app 'x1' already has an access control setting (app_acls[0])",
        "app_acls[2].app_id: unknown app 'zz'",
        "app_acls[2].app_acl_type: must be one of PERMIT, DENY",
        "app_acls[2].app_acl_values: length must be at least 1",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)


def test_feature_records_checked() -> None:
    problems = _problems(features=[{"name": "", "enable": "yes"}, {"enable": True, "surprise": 1}])
    for e in ("features[0].name: length must be at least 1", "features[0].enable: must be a boolean",
              "features[1].name: is required", "features[1].surprise: unknown field"):
        assert any(p.startswith(e) for p in problems), (e, problems)


def test_auth_feature_parameters_checked() -> None:
    problems = _problems(features=[
        {"name": "real_ip_from_xff", "enable": True, "config": '{"enable": true, "xff_index": "last"}'},
        {"name": "real_ip_header_getter", "enable": True, "config": {"enable": True}},
        {"name": "custom_auth_header", "enable": True, "config": {"app_auth_header": "X-Sdk-Sign"}},
        {"name": "backend_token_allow", "enable": True, "config": {"backend_token_allow_users": [{"user_name": "("}]}},
    ])
    for e in ("features[0].config.xff_index: must be an integer",
              "features[1].config.header_getter: must name a header",
              "features[2].config.app_auth_header: 3-64 characters",
              "features[3].config.backend_token_allow_users: bad regular expression '('"):
        assert any(p.startswith(e) for p in problems), (e, problems)


def test_ipset_against_linear_scan() -> None:
    import ipaddress

    rng = random.Random(7)
    entries = []
    for _ in range(60):
        a = rng.randrange(0, 2**32 - 5000)
        kind = rng.randrange(3)
        if kind == 0:
            entries.append(str(ipaddress.IPv4Address(a)))
        elif kind == 1:
            entries.append(f"{ipaddress.IPv4Address(a)}-{ipaddress.IPv4Address(a + rng.randrange(4000))}")
        else:
            entries.append(f"{ipaddress.IPv4Address(a)}/{rng.randrange(16, 33)}")
    entries += ["2001:db8::/48", "fe80::1-fe80::ff"]
    ipset = IpSet(entries)
    spans = [parse_entry(e) for e in entries]
    probes = [rng.randrange(0, 2**32) for _ in range(3000)] + [s[1] for s in spans] + [s[2] for s in spans] + \
        [s[2] + 1 for s in spans] + [s[1] - 1 for s in spans]
    for p in probes:
        if not 0 <= p < 2**32:
            continue
        expected = any(v == 4 and lo <= p <= hi for v, lo, hi in spans)
        assert ipset.contains_key((4, p)) == expected, p
    assert ipset.contains("2001:db8:0:ffff::1") and not ipset.contains("2001:db8:1::1")
    assert ipset.contains("fe80::80") and not ipset.contains("fe80::100")
    assert ip_key("::ffff:10.0.0.1") == (4, 0x0A000001)
    assert ip_key("garbage") is None
