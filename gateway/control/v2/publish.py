"""Publishing: put an API online or offline in an environment, one or many at a time; its history and runtime view.

Role: control plane, off the request path. A publication (``publishes`` element) is what the data plane
serves (the API's ``apis`` record, or the publication's own ``api_definition`` copy when it has one); taking
an API offline deletes its publication and everything bound to it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.control.common import AdminError, bad_param, json_response, missing_param, new_id, now_iso, read_body
from gateway.control.store import DocumentStore
from gateway.control.v2 import versions
from gateway.control.v2.crud import apply
from gateway.control.v2.document import (
    Doc,
    Item,
    env_exists,
    env_name,
    find,
    items,
    page,
    present,
    rows_where,
)
from gateway.control.v2.resources import cascade_delete, decorate_api
from gateway.snapshot import delta
from gateway.snapshot.collections import RELEASE_ENV_ID, served_definition


def publish_change(doc: Doc, api_id: str, env_id: str, action: str, remark: str | None,
                    out: list[Item]) -> None:
    # looked up before the draft is promoted (that may pin the other environments' publications, and an edited
    # collection is no longer covered by the active index); this environment's publication is not among those
    existing = [p for p in rows_where(doc, "publishes", "api_id", api_id) if p.get("env_id") == env_id]
    if action == "online":
        api = versions.promote_draft(doc, api_id, env_id)  # publishing copies the draft; others keep theirs
    if action == "online":
        now = now_iso()
        record: Item = {"publish_id": existing[0]["publish_id"] if existing else new_id(), "api_id": api_id,
                        "env_id": env_id, "version_id": new_id(), "publish_time": now}
        if remark:
            record["remark"] = remark
        done = delta.replaced(doc.get("publishes") or [], existing[0], record) if existing else None
        if done is not None:
            doc["publishes"] = done[0]
        else:
            doc["publishes"] = delta.appended(doc.get("publishes") or [], record)
        versions.record_version(doc, api_id, env_id, record["version_id"], now, remark, api)
        out.append({**record, "api_name": api.get("name"), "remark": remark})
    else:
        api = find(doc, "apis", api_id) or {}
        if not existing:
            raise AdminError(404, "APIG.3015", f"The API publication record does not exist,api:{api_id}")
        out.append({**existing[0], "api_name": api.get("name")})
        effective = [v for v in versions.version_rows(doc, api_id) if v.get("env_id") == env_id]
        if effective and find(doc, versions.VERSIONS, str(effective[-1].get("id"))) is not None:
            versions.set_effective(doc, effective[-1], False)
        cascade_delete(doc, "publishes", {str(p["publish_id"]) for p in existing})


def check_publish_args(doc: Doc, action: Any, env_id: Any) -> tuple[str, str]:
    if action not in ("online", "offline"):
        raise AdminError(400, "APIG.2011", "Invalid parameter value,parameterName:action. "
                         "Please refer to the support documentation")
    if not isinstance(env_id, str) or not env_id:
        raise missing_param("env_id")
    if not env_exists(doc, env_id):
        raise AdminError(404, "APIG.3003", f"The environment does not exist,id:{env_id}")
    return action, env_id


async def api_action(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    doc = store.doc
    action, env_id = check_publish_args(doc, body.get("action"), body.get("env_id"))
    api_id = body.get("api_id")
    if not isinstance(api_id, str) or not api_id:
        raise missing_param("api_id")
    if find(doc, "apis", api_id) is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    out: list[Item] = []

    def change(doc: Doc) -> str | None:
        publish_change(doc, api_id, env_id, action, body.get("remark"), out)
        return None

    headers = await apply(store, request, change)
    return json_response(out[0], status=201, headers=headers)


async def api_publish_batch(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    doc = store.doc
    action, env_id = check_publish_args(doc, request.query.get("action"), body.get("env_id"))
    apis = body.get("apis")
    group_id = body.get("group_id")
    if apis is None and not group_id:
        raise missing_param("apis")
    if apis is None:
        api_ids = [str(a.get("id")) for a in items(doc, "apis") if a.get("group_id") == group_id]
    elif isinstance(apis, list) and all(isinstance(a, str) for a in apis):
        api_ids = list(dict.fromkeys(apis))
    else:
        raise bad_param("apis")
    if len(api_ids) > 1000:
        raise bad_param("apis", "at most 1000 APIs at a time", "APIG.2003")
    success: list[Item] = []
    failure: list[Item] = []

    def change(doc: Doc) -> str | None:
        success.clear()
        failure.clear()
        for api_id in api_ids:
            api = find(doc, "apis", api_id)
            if api is None:
                failure.append({"api_id": api_id, "error_code": "APIG.3002",
                                "error_msg": f"Api {api_id} not found"})
                continue
            try:
                publish_change(doc, api_id, env_id, action, body.get("remark"), success)
            except AdminError as err:
                failure.append({"api_id": api_id, "api_name": api.get("name"), "error_code": err.code,
                                "error_msg": err.msg})
        return None

    headers = await apply(store, request, change)
    return json_response({"success": success, "failure": failure}, headers=headers)


async def api_publish_history(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    api_id = request.match_info["api_id"]
    if find(doc, "apis", api_id) is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist,id:{api_id}")
    rows = [versions.version_view(x, env_name(doc, str(x.get("env_id"))))
            for x in reversed(versions.version_rows(doc, api_id))]  # newest first
    env_id = request.query.get("env_id")
    if env_id:
        rows = [r for r in rows if r["env_id"] == env_id]
    if request.query.get("env_name"):
        rows = [r for r in rows if str(r["env_name"]).upper() == request.query["env_name"].upper()]
    page_, total = page(request, rows)
    return json_response({"total": total, "size": len(page_), "api_versions": page_})


async def api_runtime(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    doc = store.doc
    api_id = request.match_info["api_id"]
    env_id = request.query.get("env_id") or RELEASE_ENV_ID
    api = find(doc, "apis", api_id)
    pub = next((p for p in items(doc, "publishes") if p.get("api_id") == api_id and p.get("env_id") == env_id),
               None)
    if api is None or pub is None:
        raise AdminError(404, "APIG.3002", f"The API does not exist or is not published,id:{api_id}")
    out = {**served_definition(api, pub), "run_env_id": env_id, "run_env_name": env_name(doc, env_id),
           "publish_id": pub.get("publish_id"), "publish_time": pub.get("publish_time")}
    return json_response(present(out))


def _version(doc: Doc, version_id: str) -> Item:
    v = find(doc, versions.VERSIONS, version_id)
    if v is None:
        raise AdminError(404, "APIG.3064", f"The API version does not exist,id:{version_id}")
    return v


async def api_version_switch(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``PUT /apis/publish/{api_id}`` ``{"version_id"}``: serve that version again in its environment."""
    api_id = request.match_info["api_id"]
    body = await read_body(request)
    version_id = body.get("version_id")
    if not isinstance(version_id, str) or not version_id:
        raise missing_param("version_id")
    version = _version(store.doc, version_id)
    if version.get("api_id") != api_id:
        raise AdminError(404, "APIG.3064", f"The API version does not exist,id:{version_id}")
    out: list[Item] = []

    def change(doc: Doc) -> str | None:
        out.append(versions.switch_to(doc, _version(doc, version_id)))
        return None

    headers = await apply(store, request, change)
    api = find(store.doc, "apis", api_id) or {}
    record = {k: v for k, v in out[0].items() if k != "api_definition"}
    return json_response({**record, "api_name": api.get("name"), "remark": version.get("remark")}, headers=headers)


async def api_version_detail(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``GET /apis/versions/{version_id}``: the API as published in that version."""
    doc = store.doc
    v = _version(doc, request.match_info["version_id"])
    env_id = str(v.get("env_id"))
    pub = next((p for p in items(doc, "publishes") if p.get("api_id") == v.get("api_id")
                and p.get("env_id") == env_id), {})
    shown = decorate_api(doc, dict(v.get("definition") or {}), {"env_id": env_id})
    shown.update({"version_id": v.get("id"), "run_env_id": env_id, "run_env_name": env_name(doc, env_id),
                  "publish_id": pub.get("publish_id"), "publish_time": v.get("publish_time"),
                  "status": v.get("status", 1)})
    return json_response(present(shown))


async def api_version_offline(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    """``DELETE /apis/versions/{version_id}``: take an effective version (its environment) offline."""
    v = _version(store.doc, request.match_info["version_id"])
    if v.get("status", 1) != 1:
        raise AdminError(400, "APIG.3065", f"The API version is not effective,id:{v.get('id')}")

    def change(doc: Doc) -> str | None:
        publish_change(doc, str(v["api_id"]), str(v["env_id"]), "offline", None, [])
        return None

    headers = await apply(store, request, change)
    return web.Response(status=204, headers=headers)
