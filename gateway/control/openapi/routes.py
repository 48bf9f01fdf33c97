"""Import/export admin endpoints (the ``gateway import`` / ``export`` commands are in :mod:`.commands`).

Role: control plane only. ``POST /v1/import`` (and the vendor's ``POST .../openapi/import``, multipart)
converts a Swagger 2.0 / OpenAPI 3 document with :func:`gateway.control.openapi.importer.import_openapi`, merges it into
the active snapshot and pushes the result like any other change (all-or-nothing, new version).
``GET /v1/export`` (and the vendor's ``POST .../openapi/export``) writes one group back out.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
import yaml
from aiohttp import web

from gateway.control.common import AdminError, if_match, json_response, new_id, version_headers
from gateway.control.openapi.exporter import export_openapi
from gateway.control.openapi.importer import import_openapi, merge_fragment, resolve_existing, resolve_extended
from gateway.control.store import DocumentStore
from gateway.control.v2 import PREFIX
from gateway.core.errors import SnapshotError
from gateway.snapshot.load import parse_bytes


def _parse_definition(data: bytes, content_type: str | None = None) -> dict[str, Any]:
    if not data.strip():
        raise AdminError(400, "APIG.3609", "The input file is empty.")
    try:
        return parse_bytes(data, "definition", content_type)
    except SnapshotError as exc:
        raise AdminError(400, "APIG.3600", "JSON or YAML format error.", problems=exc.problems) from None


def _counts(fragment: dict[str, Any]) -> dict[str, int]:
    return {k: len(v) for k, v in fragment.items() if isinstance(v, list)}


def dump(data: Any, fmt: str) -> bytes:
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


async def do_import(store: DocumentStore, request: web.Request, spec: dict[str, Any], group_id: str | None,
                    group_name: str | None, publish_env: str | None, dry_run: bool, api_mode: str | None = None,
                    extend_mode: str | None = None
                    ) -> tuple[dict[str, Any], list[str], dict[str, str], list[Any], list[Any]]:
    """Convert, give new groups their sub-domain, apply ``api_mode``, and (unless a dry run) push."""
    base = store.doc  # a dry run reads; a real import re-reads under the store's lock
    suffix = store.port.settings.admin_group_domain_suffix.strip(".")
    try:
        fragment, warnings = import_openapi(spec, base=base, group_id=group_id, group_name=group_name,
                                            publish_env=publish_env)
    except ValueError as exc:
        raise AdminError(400, "APIG.3602", f"Syntax error in the Swagger file: {exc}") from None
    for group in fragment.get("groups", []):  # a new group gets its sub-domain like one made by the API
        if suffix and not group.get("sl_domain"):
            group["sl_domain"] = f"{group['id']}.{suffix}"
    success: list[Any] = []
    failure: list[Any] = []
    if extend_mode is not None:
        fragment = resolve_extended(base, fragment, extend_mode)
    if api_mode is not None:
        fragment, success, failure = resolve_existing(base, fragment, api_mode)
    headers: dict[str, str] = {}
    if not dry_run:
        rt = await store.replace(lambda current: merge_fragment(current or {}, fragment), if_match(request))
        headers = version_headers(rt)
    return fragment, warnings, headers, success, failure


async def import_v1(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    try:
        spec = _parse_definition(await request.read(), request.headers.get("Content-Type"))
        q = request.query
        fragment, warnings, headers, _, _ = await do_import(
            store, request, spec, q.get("group_id"), q.get("group_name"), q.get("publish_env"),
            q.get("dry_run", "").lower() in ("1", "true", "yes"))
    except AdminError as err:
        return err.response()
    group_id = fragment.get("groups", [{}])[0].get("id") if fragment.get("groups") else q.get("group_id")
    if group_id is None and fragment.get("apis"):
        group_id = fragment["apis"][0]["group_id"]
    rt = store.runtime
    return json_response({"group_id": group_id, "imported": _counts(fragment), "warnings": warnings,
                          "version": rt.version if rt else None}, headers=headers)


async def import_vendor(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    try:
        if not request.content_type.startswith("multipart/"):
            raise AdminError(400, "APIG.2001", "The request parameters must be specified,parameterName:file_name")
        form = await request.post()
        upload = form.get("file_name")
        if upload is None:
            raise AdminError(400, "APIG.2001", "The request parameters must be specified,parameterName:file_name")
        data = upload.file.read() if hasattr(upload, "file") else str(upload).encode()
        spec = _parse_definition(data)
        group_id = str(form.get("group_id") or "") or None
        create = str(form.get("is_create_group", "true")).lower() != "false"
        if not create and group_id is None:
            raise AdminError(400, "APIG.2001", "The request parameters must be specified,parameterName:group_id")
        modes = {k: str(form.get(k) or "merge") for k in ("api_mode", "extend_mode")}
        for k, mode in modes.items():
            if mode not in ("merge", "override"):
                raise AdminError(400, "APIG.2012", f"Invalid parameter value,parameterName:{k}. "
                                 "Please refer to the support documentation")
        fragment, warnings, headers, success, failure = await do_import(store, request, spec, group_id, None, None,
                                                                        False, modes["api_mode"], modes["extend_mode"])
    except AdminError as err:
        return err.response()
    gid = group_id or (fragment["groups"][0]["id"] if fragment.get("groups") else None)
    if gid is None and (success or failure):
        gid = fragment["apis"][0]["group_id"] if fragment.get("apis") else None
    return json_response({"success": success, "failure": failure, "group_id": gid, "ignore": [],
                          "warnings": warnings}, headers=headers)


def _export(store: DocumentStore, group_id: str | None, env_id: str | None, oas: str, define: str = "all",
            apis: Any = None) -> dict[str, Any]:
    if not group_id:
        raise AdminError(400, "APIG.2001", "The request parameters must be specified,parameterName:group_id")
    if apis is not None and not (isinstance(apis, list) and all(isinstance(a, str) for a in apis)):
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:apis. "
                         "Please refer to the support documentation")
    try:
        return export_openapi(store.doc, group_id, env_id=env_id, oas=oas, define=define,
                              apis=apis)
    except KeyError:
        raise AdminError(404, "APIG.3001", f"The API group does not exist,id:{group_id}") from None
    except ValueError:
        raise AdminError(400, "APIG.2012", "Invalid parameter value,parameterName:define. "
                         "Please refer to the support documentation") from None


async def export_v1(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    q = request.query
    try:
        apis = q.get("apis")
        spec = _export(store, q.get("group_id"), q.get("env_id"), q.get("oas", "2.0"), q.get("define", "all"),
                       apis.split(",") if apis else None)
    except AdminError as err:
        return err.response()
    fmt = "yaml" if q.get("format") == "yaml" else "json"
    return web.Response(body=dump(spec, fmt), content_type=f"application/{fmt}",
                        headers=version_headers(store.runtime))


async def export_vendor(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    try:
        data = await request.read()
        body = parse_bytes(data, "body") if data.strip() else {}
        oas = str(request.query.get("oas_version") or body.get("oas_version", "2.0"))
        spec = _export(store, body.get("group_id"), body.get("env_id"), oas, str(body.get("define") or "spec"),
                       body.get("apis"))
        if body.get("version"):
            spec["info"]["version"] = str(body["version"])
    except SnapshotError as exc:
        return AdminError(400, "APIG.2012", "Invalid request body", problems=exc.problems).response()
    except AdminError as err:
        return err.response()
    fmt = "yaml" if body.get("type") in ("yaml", "yml") else "json"
    name = f"{spec['info']['title']}.{fmt}"
    return web.Response(body=dump(spec, fmt), content_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


MAX_TASKS = 100


async def _as_task(store: DocumentStore, kind: str, response: web.StreamResponse) -> web.StreamResponse:
    """Record a finished import/export as the vendor's asynchronous task and answer its id.

    The work is done before answering (an import is one snapshot push); the task keeps the outcome for
    ``GET async-tasks/{task_id}``. Tasks live in the process's memory (the last 100).
    """
    text = response.body.decode(errors="replace") if isinstance(response, web.Response) and \
        isinstance(response.body, bytes) else ""
    if kind == "export_api" and response.status == 200:
        name = response.headers.get("Content-Disposition", "").split('filename="', 1)[-1].rstrip('"')
        text = orjson.dumps({"file_type": name.rsplit(".", 1)[-1], "content": text}).decode()
    task_id = new_id()
    tasks = store.tasks
    tasks[task_id] = {"task_id": task_id, "task_type": kind, "task_result": text,
                      "task_status": "succeed" if response.status == 200 else "failed"}
    while len(tasks) > MAX_TASKS:
        del tasks[next(iter(tasks))]
    return json_response({"task_id": task_id}, status=202)


async def import_async(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    response = await import_vendor(store, request)
    if response.status != 200:
        return response
    return await _as_task(store, "import_api", response)


async def export_async(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    response = await export_vendor(store, request)
    if response.status != 200:
        return response
    return await _as_task(store, "export_api", response)


async def task_result(store: DocumentStore, request: web.Request) -> web.StreamResponse:
    task = store.tasks.get(request.match_info["task_id"])
    if task is None:
        return AdminError(404, "APIG.3090", f"The task does not exist,id:{request.match_info['task_id']}").response()
    return json_response(task)


def install(app: web.Application, store: DocumentStore) -> None:
    app.router.add_post("/v1/import", partial(import_v1, store))
    app.router.add_get("/v1/export", partial(export_v1, store))
    app.router.add_post(f"{PREFIX}/openapi/import", partial(import_vendor, store))
    app.router.add_post(f"{PREFIX}/openapi/async-import", partial(import_async, store))
    app.router.add_post(f"{PREFIX}/openapi/async-export", partial(export_async, store))
    app.router.add_get(f"{PREFIX}/async-tasks/{{task_id}}", partial(task_result, store))
    app.router.add_post(f"{PREFIX}/openapi/export", partial(export_vendor, store))
