"""VPC channel members: list, add (or update by host/port), replace all, delete one.

Role: control plane, off the request path.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, new_id, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.crud import apply
from gateway.control.v2.document import (
    Doc,
    Item,
    page,
)


def channel_of(store: DocumentStore, request: web.Request) -> tuple[int, Item]:
    cid = request.match_info["vpc_channel_id"]
    for i, x in enumerate(store.doc.get("vpc_channels") or []):
        if isinstance(x, dict) and str(x.get("id")) == cid:
            return i, x
    raise AdminError(404, "APIG.3023", f"The VPC channel does not exist,id:{cid}")


async def members(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, channel = channel_of(store, request)
    cid = str(channel["id"])
    current = [m for m in channel.get("members") or [] if isinstance(m, dict)]
    if request.method == "GET":
        page_, total = page(request, current)
        return json_response({"total": total, "size": len(page_), "members": [member_view(channel, m) for m in page_]})
    if request.method == "DELETE":
        mid = request.match_info["member_id"]
        if not any(str(m.get("id")) == mid for m in current):
            raise AdminError(404, "APIG.3024", f"The cloud server does not exist,id:{mid}")
        new_members = [m for m in current if str(m.get("id")) != mid]
    else:
        body = await read_body(request)
        given = body.get("members")
        if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
            raise missing_param("members")
        added = [{**m, "id": m.get("id") or new_id()} for m in given]
        if request.method == "PUT":  # replace all members
            new_members = added
        else:  # POST: add, or update the member with the same host/port
            def ident(m: Item) -> tuple[Any, Any]:
                return (m.get("host") or m.get("ecs_id"), m.get("port"))

            keys = {ident(m) for m in added}
            kept = [m for m in current if ident(m) not in keys]
            old_ids = {ident(m): m.get("id") for m in current}
            added = [{**m, "id": old_ids.get(ident(m)) or m["id"]} for m in added]
            new_members = kept + added

    def change(doc: Doc) -> str:
        items = list(doc.get("vpc_channels") or [])
        for i, x in enumerate(items):
            if isinstance(x, dict) and str(x.get("id")) == cid:
                items[i] = {**x, "members": new_members}
                doc["vpc_channels"] = items
                return f"vpc_channels[{i}]"
        raise AdminError(404, "APIG.3023", f"The VPC channel does not exist,id:{cid}")

    headers = await apply(store, request, change)
    if request.method == "DELETE":
        return web.Response(status=204, headers=headers)
    status = 201 if request.method == "POST" else 200
    shown = [member_view(channel, m) for m in new_members]
    return json_response({"total": len(shown), "size": len(shown), "members": shown}, status=status, headers=headers)


def member_view(channel: Item, m: Item) -> Item:
    """A member as the vendor answers it: its channel, the channel's port unless its own, and a status."""
    return {"vpc_channel_id": channel.get("id"), "port": channel.get("port"), "status": 1, "is_backup": False,
            "health_status": "healthy" if m.get("status", 1) == 1 else "unhealthy",
            "create_time": channel.get("create_time"), **m}
