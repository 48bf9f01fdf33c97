"""The backend address and status of a forwarded call are kept on the request context only for the kafka_log
plug-in's record: an API without that plug-in leaves ``ctx.extras`` empty (nothing per request to fill or to
check), an API bound to it gets ``upstream_addr`` and ``upstream_status``."""

from __future__ import annotations

from typing import Any

from gateway.model.context import RequestContext
from gateway.observe.kafka_log import EXTRAS_KEY
from tests.support.helpers import http_api, snapshot
from tests.support.plugins_helpers import bind, plugin


async def test_upstream_extras_only_for_apis_with_a_log_plugin(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    kafka = {"broker_list": ["127.0.0.1:9"], "topic": "apig-logs", "key": "", "max_retry_count": 0,
             "retry_backoff": 1}
    doc = snapshot([http_api("plain", "/plain", addr), http_api("logged", "/logged", addr)],
                   plugins=[plugin("k", "kafka_log", kafka)], plugin_bindings=[bind("b", "k", "logged")])
    gw = await make_gateway(doc)
    seen: dict[str, dict[str, Any]] = {}

    def capture(ctx: RequestContext) -> None:
        seen[ctx.path] = dict(ctx.extras)

    gw.gw.services.completion_hooks.append(capture)
    for path in ("/plain", "/logged"):
        async with client.get(gw.url + path) as r:
            assert r.status == 200
            await r.read()
    assert seen["/plain"] == {}
    assert seen["/logged"] == {"upstream_addr": addr, "upstream_status": 200}


async def test_the_log_hook_runs_only_while_a_log_plugin_is_bound(make_gateway, echo_backend, client) -> None:
    _backend, addr = echo_backend
    kafka = {"broker_list": ["127.0.0.1:9"], "topic": "apig-logs", "key": "", "max_retry_count": 0,
             "retry_backoff": 1}
    plain = snapshot([http_api("plain", "/plain", addr)])
    logged = snapshot([http_api("plain", "/plain", addr), http_api("logged", "/logged", addr)],
                      plugins=[plugin("k", "kafka_log", kafka)], plugin_bindings=[bind("b", "k", "logged")])
    gw = await make_gateway(plain)
    services = gw.gw.services
    hook = services.extras[EXTRAS_KEY]
    assert hook not in services.completion_hooks and len(services.completion_hooks) == 2  # access log, metrics
    gw.gw.apply_document(logged)
    assert services.completion_hooks.count(hook) == 1
    async with client.get(gw.url + "/logged") as r:
        assert r.status == 200
    assert sum(hook.samples().values()) >= 1  # the record was offered to its sink
    gw.gw.apply_document(logged)  # still bound: one hook
    assert services.completion_hooks.count(hook) == 1
    gw.gw.apply_document(plain)
    assert hook not in services.completion_hooks
    async with client.get(gw.url + "/plain") as r:
        assert r.status == 200
