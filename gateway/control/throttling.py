"""Admin route ``GET /v1/throttling``: the throttling store's state and counters.

Role: off the request path (admin listener, behind the admin token). Answers which store decides
(``local`` / ``redis``), whether Redis is up, the failure policy and divisors, and the ``stats``
counters (decisions by source, Redis errors/timeouts, fallbacks, admitted/rejected) so operators and
benchmarks can see fallbacks without scraping logs.
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.store import DocumentStore
from gateway.pipeline.stages.throttling.service import ThrottleService


def install(app: web.Application, store: DocumentStore) -> None:
    services = store.port.services

    async def throttling(_: web.Request) -> web.Response:
        svc = ThrottleService.of(services)
        return web.json_response({
            "store": "redis" if svc.target is not None else "local",
            "redis_mode": svc.target.mode if svc.target is not None else None,
            "redis_up": svc.redis_up,
            "failure_policy": svc.failure_policy,
            "fallback_divisor": svc.fallback_divisor,
            "local_counters": len(svc.local),
            "fallback_counters": len(svc.fallback),
            "stats": svc.stats,
        })

    app.router.add_get("/v1/throttling", throttling)

