"""HTTP -> HTTPS redirect for custom domains with ``is_http_redirect_to_https`` (a pre-route step).

Role in the pipeline: before routing. A plain-HTTP call whose Host is a group domain (``url_domains``
element) with ``is_http_redirect_to_https: true`` is answered with a redirect to the same URL over HTTPS:
301 for GET/HEAD, 308 otherwise (the method and body are kept). The table of such hosts is built once per
snapshot; when no domain sets the flag (the usual case) the step does not exist at all.
Behind a TLS-terminating proxy, the proxy's own redirect is the one to use: this step sees plain HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.runtime import PreRoute
    from gateway.pipeline.spec import BuildContext


def redirect_hosts(build: BuildContext) -> frozenset[str]:
    """Lower-case hosts whose plain-HTTP calls are redirected."""
    return frozenset(str(d["domain"]).lower() for g in build.index.items("groups")
                     for d in g.get("url_domains") or []
                     if isinstance(d, dict) and d.get("domain") and d.get("is_http_redirect_to_https") is True)


def build_redirect(build: BuildContext) -> PreRoute | None:
    """The pre-route redirect of the snapshot (None, nothing per request, when no domain sets the flag)."""
    hosts = redirect_hosts(build)
    if not hosts:
        return None

    def redirect_to_https(ctx: RequestContext) -> web.StreamResponse | None:
        if ctx.request.secure:
            return None
        raw = ctx.request.host
        host = raw[1:raw.find("]")] if raw.startswith("[") else raw.rsplit(":", 1)[0] if ":" in raw else raw
        if host.lower() not in hosts:
            return None
        status = 301 if ctx.method in ("GET", "HEAD") else 308
        ctx.status = status
        headers = {"Location": f"https://{host}{ctx.request.raw_path}", "X-Request-Id": ctx.request_id}
        return web.Response(status=status, headers=headers)

    return redirect_to_https
