"""The gateway as a vendor instance: its details, its feature toggles, VPC channel member switches.

Role: control plane, off the request path. One gateway is one instance: ``instances/{id}`` answers its
details whatever the id (tools read it before anything else); ``features`` reads and sets the snapshot's
``features`` collection (the gateway features of docs/configuration.md, one record per name);
``members/batch-enable|batch-disable`` and ``health-config`` edit a VPC channel.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.channels import channel_of
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, items, listed, replace_item

STARTED_MS = int(time.time() * 1000)  # the vendor gives an instance's create_time as a Unix timestamp


async def instance_details(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    iid = request.match_info["instance_id"]
    rt = store.runtime
    return json_response({"id": iid, "project_id": request.match_info["project_id"], "instance_name": "gateway",
                          "status": "Running", "instance_status": 6, "type": "apig", "spec": "PROFESSIONAL",
                          "create_time": STARTED_MS, "charging_mode": 0, "loadbalancer_provider": "elb",
                          "description": f"snapshot {rt.version if rt else None}"})


async def features_list(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    rows = [{"id": f.get("id") or f.get("name"), "instance_id": request.match_info["instance_id"], **f}
            for f in items(store.doc, "features")]
    return json_response(listed(request, rows, "features"))


async def feature_set(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST features {name, enable, config}``: create or replace the feature record of that name."""
    body = await read_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise missing_param("name")
    if not isinstance(body.get("enable"), bool):
        raise missing_param("enable")
    record: Item = {"name": name, "enable": body["enable"]}
    if "config" in body:
        record["config"] = body["config"]

    def change(doc: Doc) -> str:
        kept = [f for f in items(doc, "features") if f.get("name") != name]
        old = next((f for f in items(doc, "features") if f.get("name") == name), {})
        record["id"] = old.get("id") or new_id()
        record["update_time"] = now_iso()
        doc["features"] = [*kept, record]
        return f"features[{len(kept)}]"

    headers = await apply(store, request, change)
    return json_response({**record, "instance_id": request.match_info["instance_id"]}, status=201, headers=headers)


def _member_ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("member_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(x, str) for x in ids):
        raise missing_param("member_ids")
    return ids


async def members_switch(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``members/batch-enable`` / ``batch-disable``: a disabled member is never selected nor checked."""
    _, channel = channel_of(store, request)
    cid = str(channel["id"])
    ids = set(_member_ids(await read_body(request)))
    status = 1 if request.path.endswith("batch-enable") else 2
    known = {str(m.get("id")) for m in channel.get("members") or [] if isinstance(m, dict)}
    if not ids <= known:
        raise AdminError(404, "APIG.3024", f"The cloud server does not exist,id:{sorted(ids - known)[0]}")

    def change(doc: Doc) -> str:
        current = next(c for c in items(doc, "vpc_channels") if str(c.get("id")) == cid)
        members = [({**m, "status": status} if str(m.get("id")) in ids else m) for m in current.get("members") or []]
        return f"vpc_channels[{replace_item(doc, 'vpc_channels', cid, {**current, 'members': members})}]"

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)


async def health_config(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``PUT vpc-channels/{id}/health-config``: the channel's active health check."""
    _, channel = channel_of(store, request)
    cid = str(channel["id"])
    config = await read_body(request)

    def change(doc: Doc) -> str:
        current = next(c for c in items(doc, "vpc_channels") if str(c.get("id")) == cid)
        return f"vpc_channels[{replace_item(doc, 'vpc_channels', cid, {**current, 'vpc_health_config': config})}]"

    headers = await apply(store, request, change)
    return json_response({**config, "vpc_channel_id": cid, "id": cid, "create_time": channel.get("create_time")},
                         headers=headers)
