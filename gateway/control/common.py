"""Shared pieces of the control-plane API: APIG error bodies, secret masking, ids, and the commit step.

Role: off the request path (admin listener only). Every admin write ends in :func:`commit`, which hands
a complete new document to :meth:`gateway.control.port.ControlPort.push_document` (validate + compile in a worker
thread, then one atomic swap) and turns its failures into the vendor's error shape:
``{"error_code": "APIG.2012", "error_msg": ..., "problems": ["path: reason", ...]}`` with 400, or 412
when ``If-Match`` names a version that is no longer active. A rejected change changes nothing.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any

import orjson
from aiohttp import web

from gateway.control.port import ControlPort, VersionConflict
from gateway.core.errors import SnapshotError
from gateway.model.runtime import Runtime
from gateway.snapshot.load import parse_bytes

MASK = "******"
# No vendor code exists for a failed If-Match; ours, documented in docs/admin-api.md.
VERSION_CONFLICT_CODE = "APIG.1412"
# Fields whose values are credentials: never returned by GET, kept when a PUT sends the mask back.
SECRET_FIELDS = frozenset({"app_secret", "sign_secret", "private_key", "user_data", "app_code", "password",
                           "secret",  # the secret key of an iam_credentials record
                           "sasl_password", "sas_password",  # kafka_log plug-ins (inside plugin_content)
                           "app_token_key"})  # the app_token feature (inside its config)
# Fields that may hold a JSON document in a string (plug-ins, features): masked and unmasked inside that document too.
JSON_STRING_FIELDS = frozenset({"plugin_content", "config"})  # plug-ins, gateway features


class AdminError(Exception):
    """An admin request answered with the vendor's error body."""

    def __init__(self, status: int, code: str, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.extra = extra

    def response(self) -> web.Response:
        return json_response({"error_code": self.code, "error_msg": self.msg, **self.extra}, status=self.status)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def bad_param(name: str, reason: str = "", code: str = "APIG.2012") -> AdminError:
    detail = f" ({reason})" if reason else ""
    return AdminError(400, code, f"Invalid parameter value,parameterName:{name}{detail}. "
                      "Please refer to the support documentation")


def missing_param(name: str) -> AdminError:
    return AdminError(400, "APIG.2001", f"The request parameters must be specified,parameterName:{name}. "
                      "Please refer to the support documentation")


def new_id() -> str:
    """A vendor-style id: 32 lower-case hex characters."""
    return os.urandom(16).hex()


def now_iso() -> str:
    """Vendor timestamp format (``2020-08-03T13:09:13.122211909Z``; we give microseconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def read_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a mapping (JSON or YAML)."""
    data = await request.read()
    if not data.strip():
        if required:
            raise AdminError(400, "APIG.2001", "The request body must be specified.")
        return {}
    try:
        return parse_bytes(data, "body", request.headers.get("Content-Type"))
    except SnapshotError as exc:
        raise AdminError(400, "APIG.2012", "Invalid request body", problems=exc.problems) from None


def mask_value(value: Any) -> Any:
    return MASK if isinstance(value, str) and value else value


def _json_doc(value: Any) -> Any:
    """The object a JSON-in-a-string field holds (None when it holds none)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None
    return None


def _mask_json_string(value: Any) -> Any:
    if not isinstance(value, str):
        return mask(value)
    doc = _json_doc(value)
    return value if doc is None else orjson.dumps(mask(doc)).decode()


def mask(value: Any) -> Any:
    """A deep copy of ``value`` with every credential field replaced by the mask."""
    if isinstance(value, dict):
        return {k: (mask_value(v) if k in SECRET_FIELDS else _mask_json_string(v) if k in JSON_STRING_FIELDS
                    else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def unmask(new: Any, old: Any) -> Any:
    """Put back secrets that a client sent as the mask (GET -> edit -> PUT keeps the real secrets).

    Only what holds a mask is copied: an element without one is returned as is (a whole pushed snapshot is
    not duplicated, and the parsed body does not become garbage all at once)."""
    if isinstance(new, dict):
        old_d = old if isinstance(old, dict) else {}
        merged: dict[str, Any] | None = None
        for k, v in new.items():
            if k in SECRET_FIELDS and v == MASK and k in old_d:
                nv = old_d.get(k)
            elif k in JSON_STRING_FIELDS and isinstance(v, str) and MASK in v and _json_doc(v) is not None:
                nv = orjson.dumps(unmask(_json_doc(v), _json_doc(old_d.get(k)))).decode()
            else:
                nv = unmask(v, old_d.get(k))
            if nv is not v:
                if merged is None:
                    merged = dict(new)
                merged[k] = nv
        return merged if merged is not None else new
    if isinstance(new, list):
        old_l = old if isinstance(old, list) else []
        by_id = {str(o.get("id")): o for o in old_l if isinstance(o, dict) and o.get("id") is not None}
        out: list[Any] | None = None
        for i, item in enumerate(new):
            ref = by_id.get(str(item.get("id"))) if isinstance(item, dict) and item.get("id") is not None else None
            if ref is None and i < len(old_l) and not by_id:
                ref = old_l[i]
            value = unmask(item, ref)
            if value is not item:
                if out is None:
                    out = list(new)
                out[i] = value
        return out if out is not None else new
    return new


def _element_key(item: dict[str, Any]) -> Any:
    """An element's id (publications are keyed by ``publish_id``: their published copy holds secrets too)."""
    return item.get("id") if item.get("id") is not None else item.get("publish_id")


def unmask_document(doc: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    if not current:
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, list):
            old = current.get(key)
            by_id = {str(_element_key(o)): o for o in old or [] if isinstance(o, dict)
                     and _element_key(o) is not None}
            items: list[Any] | None = None
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    fixed = unmask(item, by_id.get(str(_element_key(item))))
                    if fixed is not item:
                        if items is None:
                            items = list(value)
                        items[i] = fixed
            out[key] = items if items is not None else value
        else:
            out[key] = value
    return out


_ESCAPED_STAR = re.compile(rb"\\(?:u002[aA]|x2[aA]|U0000002[aA])")  # '*' written as an escape (JSON, YAML)


def may_hold_mask(data: bytes) -> bool:
    """Whether a request body may contain the mask: without it, unmasking would change nothing."""
    return MASK.encode() in data or _ESCAPED_STAR.search(data) is not None


def leftover_masks(value: Any, path: str = "") -> list[str]:
    """Paths of credential fields still holding the mask (sent back for an element with no stored secret)."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if k in SECRET_FIELDS and v == MASK:
                out.append(f"{sub}: is the mask {MASK!r} but no stored secret exists for this element")
            elif k in JSON_STRING_FIELDS and isinstance(v, str) and MASK in v:
                out.extend(leftover_masks(_json_doc(v), sub))
            else:
                out.extend(leftover_masks(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(leftover_masks(v, f"{path}[{i}]"))
    return out


def version_headers(runtime: Runtime | None) -> dict[str, str]:
    return {"ETag": f'"{runtime.version}"'} if runtime is not None else {}


def if_match(request: web.Request) -> str | None:
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def strip_item_prefix(problems: list[str], prefix: str | None) -> list[str]:
    """``apis[12].backend_api.timeout: ...`` -> ``backend_api.timeout: ...`` for the item being changed."""
    if not prefix:
        return problems
    out = []
    for p in problems:
        if p.startswith(prefix + "."):
            out.append(p[len(prefix) + 1:])
        elif p.startswith(prefix + ":"):
            out.append("body" + p[len(prefix):])
        else:
            out.append(p)
    return out


async def commit(gateway: ControlPort, doc: dict[str, Any], expected_version: str | None = None,
                 item_prefix: str | None = None) -> Runtime:
    """Push ``doc`` as the new snapshot, or raise :class:`AdminError` (400 / 412); nothing changes on error."""
    try:
        return await gateway.push_document(doc, expected_version=expected_version)
    except VersionConflict as exc:
        raise AdminError(412, VERSION_CONFLICT_CODE,
                         f"Precondition failed: the active snapshot version is {exc.current}",
                         current_version=exc.current) from None
    except SnapshotError as exc:
        problems = strip_item_prefix(exc.problems, item_prefix)
        first = problems[0] if problems else "body"
        name = first.split(":", 1)[0]
        raise AdminError(400, "APIG.2012",
                         f"Invalid parameter value,parameterName:{name}. {first.split(':', 1)[-1].strip()}",
                         problems=problems) from None


def current_document(gateway: ControlPort) -> dict[str, Any]:
    return gateway.document if gateway.document is not None else {}
