"""Faithful to the vendor: the MOCK content type of the vendor's example, the OCR'd $context spellings."""

from __future__ import annotations

from tests.support.helpers import http_api, mock_api, snapshot


async def test_mock_answers_application_json_like_the_vendor_example(make_gateway, client) -> None:
    plain = mock_api("m1", "/mock", "mock success")
    typed = mock_api("m2", "/typed", "hello")
    typed["mock_info"]["headers"] = [{"key": "Content-Type", "value": "text/plain"}]
    gw = await make_gateway(snapshot([plain, typed]))
    async with client.get(gw.url + "/mock") as r:
        assert r.status == 200 and await r.read() == b"mock success"
        assert r.headers["Content-Type"] == "application/json"
    async with client.get(gw.url + "/typed") as r:
        assert r.headers["Content-Type"] == "text/plain"  # a configured header still wins


async def test_ocr_spellings_of_system_parameters_load_and_work(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    api = http_api("a1", "/ctx", addr)
    api["backend_params"] = [
        {"name": "X-Ip", "location": "HEADER", "origin": "SYSTEM", "value": "$context.sourcelp"},
        {"name": "X-Api", "location": "HEADER", "origin": "SYSTEM", "value": "$context.apild"},
        {"name": "X-App", "location": "HEADER", "origin": "SYSTEM", "value": "$context.appld"},
    ]
    gw = await make_gateway(snapshot([api]))
    async with client.get(gw.url + "/ctx") as r:
        assert r.status == 200, await r.text()
        seen = (await r.json())["headers"]
    assert seen["X-Ip"] == "127.0.0.1" and seen["X-Api"] == "a1"
    assert "X-App" not in seen  # no app on an auth_type NONE call: nothing to send
