"""One response type of a group's gateway response (``gateway-responses/{id}/{response_type}``).

Role: control plane, off the request path. A gateway response element keeps a map ``type -> {status, body,
headers}``; these paths read, set or remove one entry (a removed type answers with the built-in default).
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, json_response, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, find, replace_item
from gateway.core.errors import RESPONSE_TYPES


def _response(doc: Doc, request: web.Request) -> Item:
    rid, gid = request.match_info["response_id"], request.match_info["group_id"]
    if find(doc, "groups", gid) is None:
        raise AdminError(404, "APIG.3001", f"The API group does not exist,id:{gid}")
    resp = find(doc, "responses", rid)
    if resp is None or resp.get("group_id") not in (None, gid):
        raise AdminError(404, "APIG.3081", f"The gateway response does not exist,id:{rid}")
    return resp


def _type(request: web.Request) -> str:
    kind = request.match_info["response_type"]
    if kind not in RESPONSE_TYPES:
        raise AdminError(400, "APIG.2012", f"Invalid parameter value,parameterName:response_type ({kind})")
    return kind


def _entry(resp: Item, kind: str) -> Item:
    entry = (resp.get("responses") or {}).get(kind)
    if isinstance(entry, dict):
        return {"default": False, "headers": [], **entry}
    return {"status": RESPONSE_TYPES.get(kind) or 500, "body": '{"error_code":"$context.error.code",'
            '"error_msg":"$context.error.message","request_id":"$context.requestId"}', "headers": [],
            "default": True}


async def show(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    kind = _type(request)
    return json_response({kind: _entry(_response(store.doc, request), kind)})


async def update(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    kind = _type(request)
    body = await read_body(request)
    entry = {k: body[k] for k in ("status", "body", "headers") if k in body}
    out: list[Item] = []

    def change(doc: Doc) -> str:
        resp = _response(doc, request)
        new = {**resp, "responses": {**(resp.get("responses") or {}), kind: entry}}
        out.append(new)
        return f"responses[{replace_item(doc, 'responses', str(resp['id']), new)}]"

    headers = await apply(store, request, change)
    return json_response({kind: _entry(out[0], kind)}, headers=headers)


async def delete(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    kind = _type(request)

    def change(doc: Doc) -> str:
        resp = _response(doc, request)
        remaining = {k: v for k, v in (resp.get("responses") or {}).items() if k != kind}
        new = {**resp, "responses": remaining}
        return f"responses[{replace_item(doc, 'responses', str(resp['id']), new)}]"

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)
