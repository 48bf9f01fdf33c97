"""app_tokens: self-contained app tokens (payload + HMAC keyed from the app's secret), checked without any
store: genuine tokens pass; forged, tampered, expired, wrong-kind and revoked (secret reset) ones do not."""

from __future__ import annotations

import base64
import time

import orjson
import pytest

from gateway.pipeline.stages.app_tokens import ACCESS, REFRESH, LocalSpent, access_app, mint, verify
from gateway.pipeline.stages.apps import App, AppRegistry


def registry(*apps: App) -> AppRegistry:
    return AppRegistry(by_id={a.id: a for a in apps}, by_key={a.key: a for a in apps})


APP = App(id="app1", name="one", key="key_0001", secret="secret_0001_xyz", status=1)
OTHER = App(id="app2", name="two", key="key_0002", secret="secret_0002_xyz", status=1)


def test_genuine_tokens_of_each_kind() -> None:
    reg = registry(APP, OTHER)
    access, refresh = mint(APP, ACCESS, 60), mint(APP, REFRESH, 60)
    assert access_app(access, reg) is APP
    found = verify(refresh, REFRESH, reg)
    assert found is not None and found[0] is APP and found[1].kind == REFRESH
    assert access != mint(APP, ACCESS, 60)  # a fresh nonce each time
    assert verify(refresh, ACCESS, reg) is None and verify(access, REFRESH, reg) is None  # kinds never mix
    assert APP.secret not in access and len(access) < 200


def test_the_same_config_elsewhere_accepts_them() -> None:
    """Another node/worker: a registry built anew from the same apps (new objects, same secrets)."""
    token = mint(APP, ACCESS, 60)
    copy = App(id="app1", name="renamed", key="key_0001", secret="secret_0001_xyz", status=1)
    assert access_app(token, registry(copy)) is copy


def test_expired_tokens_are_rejected() -> None:
    now = time.time()
    token = mint(APP, ACCESS, 60, now=now - 61)
    assert access_app(token, registry(APP)) is None
    assert verify(mint(APP, ACCESS, 60, now=now), ACCESS, registry(APP), now=now + 59) is not None
    assert verify(mint(APP, ACCESS, 60, now=now), ACCESS, registry(APP), now=now + 60) is None


def test_a_secret_reset_or_a_deleted_app_revokes_them() -> None:
    token = mint(APP, ACCESS, 60)
    reset = App(id="app1", name="one", key="key_0001", secret="a_new_secret_0001", status=1)
    assert access_app(token, registry(reset)) is None
    assert access_app(token, registry(OTHER)) is None


def _parts(token: str) -> tuple[dict[str, object], str]:
    payload, _, mac = token.partition(".")
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))), mac


def _b64(doc: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def test_tampered_or_forged_tokens_are_rejected() -> None:
    reg = registry(APP, OTHER)
    token = mint(APP, ACCESS, 60)
    claims, mac = _parts(token)
    for change in ({"a": "app2"}, {"e": int(claims["e"]) + 3600}, {"k": REFRESH}):  # type: ignore[call-overload]
        assert access_app(f"{_b64({**claims, **change})}.{mac}", reg) is None, change
    # signed with another app's key but naming app1
    other_claims, other_mac = _parts(mint(OTHER, ACCESS, 60))
    assert access_app(f"{_b64({**other_claims, 'a': 'app1'})}.{other_mac}", reg) is None


@pytest.mark.parametrize("value", ["", "nope", ".", "a.b", "x" * 600, "é.é", "e30.AAAA", "W10.AAAA",
                                   "eyJhIjoxfQ.AAAA", "!!!.###"])
def test_garbage_is_rejected_quietly(value: str) -> None:
    assert access_app(value, registry(APP)) is None


async def test_refresh_tokens_are_spent_once_per_process() -> None:
    spent = LocalSpent()
    found = verify(mint(APP, REFRESH, 60), REFRESH, registry(APP))
    assert found is not None
    assert await spent.spend(found[1].nonce, found[1].expires)
    assert not await spent.spend(found[1].nonce, found[1].expires)


def test_app_token_key_is_mixed_in() -> None:
    """The feature's app_token_key: tokens made under one key are refused under another."""
    token = mint(APP, ACCESS, 60, gateway_key="k1")
    assert access_app(token, registry(APP), "k1") is APP
    assert access_app(token, registry(APP), "k2") is None and access_app(token, registry(APP)) is None
