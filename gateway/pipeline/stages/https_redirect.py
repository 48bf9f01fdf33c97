"""HTTP -> HTTPS redirect for custom domains with ``is_http_redirect_to_https`` (a pre-route step).

Role in the pipeline: before routing. A plain-HTTP call whose Host is a group domain (``url_domains``
element) with ``is_http_redirect_to_https: true`` is answered with a redirect to the same URL over HTTPS:
301 for GET/HEAD, 308 otherwise (the method and body are kept). The table of such hosts is built once per
snapshot; when no domain sets the flag (the usual case) the step costs one dict probe per request.
Behind a TLS-terminating proxy, the proxy's own redirect is the one to use: this step sees plain HTTP.
"""

from __future__ import annotations

from aiohttp import web

from gateway.model.context import RequestContext
from gateway.pipeline import handle as pipeline
from gateway.snapshot.validate import Index

_TABLES: dict[int, tuple[Index, frozenset[str]]] = {}


def redirect_hosts(index: Index) -> frozenset[str]:
    """Lower-case hosts whose plain-HTTP calls are redirected (memoised per snapshot; a few kept)."""
    found = _TABLES.get(id(index))
    if found is not None and found[0] is index:
        return found[1]
    hosts = frozenset(str(d["domain"]).lower() for g in index.items("groups")
                      for d in g.get("url_domains") or []
                      if isinstance(d, dict) and d.get("domain") and d.get("is_http_redirect_to_https") is True)
    _TABLES[id(index)] = (index, hosts)
    while len(_TABLES) > 4:
        del _TABLES[next(iter(_TABLES))]
    return hosts


def redirect_to_https(ctx: RequestContext) -> web.StreamResponse | None:
    hosts = redirect_hosts(ctx.runtime.index)
    if not hosts or ctx.request.secure:
        return None
    raw = ctx.request.host
    host = raw[1:raw.find("]")] if raw.startswith("[") else raw.rsplit(":", 1)[0] if ":" in raw else raw
    if host.lower() not in hosts:
        return None
    status = 301 if ctx.method in ("GET", "HEAD") else 308
    ctx.status = status
    headers = {"Location": f"https://{host}{ctx.request.raw_path}", "X-Request-Id": ctx.request_id}
    return web.Response(status=status, headers=headers)


pipeline.PRE_ROUTE.insert(0, redirect_to_https)  # before every other pre-route answer
