"""Member groups of a VPC channel (``vpc-channels/{id}/member-groups``).

Role: control plane, off the request path. A member group (an element of the channel's ``member_groups``)
names a set of members (their ``member_group_name``) and may weight them as a whole; deleting a group
that members still name is refused by validation.
"""

from __future__ import annotations

from aiohttp import web

from gateway.control.common import AdminError, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2.channels import channel_of
from gateway.control.v2.crud import apply
from gateway.control.v2.document import Doc, Item, items, listed, replace_item

FIELDS = ("member_group_name", "member_group_remark", "member_group_weight", "dict_code", "microservice_version",
          "microservice_port", "microservice_labels")


def _groups(channel: Item) -> list[Item]:
    return [g for g in channel.get("member_groups") or [] if isinstance(g, dict)]


def _put_groups(doc: Doc, cid: str, groups: list[Item]) -> str:
    current = next(c for c in items(doc, "vpc_channels") if str(c.get("id")) == cid)
    return f"vpc_channels[{replace_item(doc, 'vpc_channels', cid, {**current, 'member_groups': groups})}]"


def _find(channel: Item, gid: str) -> Item:
    found = next((g for g in _groups(channel) if str(g.get("member_group_id")) == gid), None)
    if found is None:
        raise AdminError(404, "APIG.3025", f"The member group does not exist,id:{gid}")
    return found


def _fields(body: Item) -> Item:
    return {k: body[k] for k in FIELDS if k in body}


async def create(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``POST {member_groups: [...]}``: add groups, or update the ones with the same name."""
    _, channel = channel_of(store, request)
    cid = str(channel["id"])
    given = (await read_body(request)).get("member_groups")
    if not isinstance(given, list) or not given or not all(isinstance(g, dict) for g in given):
        raise missing_param("member_groups")
    now = now_iso()
    by_name = {str(g.get("member_group_name")): g for g in _groups(channel)}
    added = [{**by_name.get(str(g.get("member_group_name")), {"member_group_id": new_id(), "create_time": now}),
              **_fields(g), "update_time": now} for g in given]
    names = {str(g.get("member_group_name")) for g in added}
    groups = [g for g in _groups(channel) if str(g.get("member_group_name")) not in names] + added

    headers = await apply(store, request, lambda doc: _put_groups(doc, cid, groups))
    return json_response({"total": len(added), "size": len(added), "member_groups": added}, status=201,
                         headers=headers)


async def list_(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, channel = channel_of(store, request)
    rows = _groups(channel)
    name = request.query.get("member_group_name")
    if name:
        exact = "member_group_name" in request.query.get("precise_search", "")
        rows = [g for g in rows if (str(g.get("member_group_name")) == name if exact
                                    else name.lower() in str(g.get("member_group_name", "")).lower())]
    return json_response(listed(request, rows, "member_groups"))


async def show(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, channel = channel_of(store, request)
    return json_response(_find(channel, request.match_info["member_group_id"]))


async def update(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, channel = channel_of(store, request)
    cid, gid = str(channel["id"]), request.match_info["member_group_id"]
    old = _find(channel, gid)
    new = {**old, **_fields(await read_body(request)), "update_time": now_iso()}
    groups = [new if str(g.get("member_group_id")) == gid else g for g in _groups(channel)]
    headers = await apply(store, request, lambda doc: _put_groups(doc, cid, groups))
    return json_response(new, headers=headers)


async def delete(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    _, channel = channel_of(store, request)
    cid, gid = str(channel["id"]), request.match_info["member_group_id"]
    _find(channel, gid)
    groups = [g for g in _groups(channel) if str(g.get("member_group_id")) != gid]
    headers = await apply(store, request, lambda doc: _put_groups(doc, cid, groups))
    return web.Response(status=204, headers=headers)
