"""The ``custom_log`` gateway feature: up to 10 request values (header, query or cookie) logged per request.

Role in the pipeline: config-load time. :func:`check_custom_log` validates the feature record
(``{"name": "custom_log", "enable": true, "config": {"custom_logs": [{"location": "header", "name": "X-Tenant"}]}}``)
and compiles it into a tuple of :class:`CustomField` kept on the snapshot's index; the access log
(:mod:`gateway.observe.accesslog`) reads :func:`custom_fields` for each line and writes the Nth value as
``custom_data_logNN`` (the vendor's field names, as in the kafka_log plug-in's ``meta_config``), masking
credential-like names exactly as it masks query parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.snapshot.features import feature_config, feature_record
from gateway.snapshot.validate import Index

if TYPE_CHECKING:
    from collections.abc import Mapping


class RequestContext(Protocol):
    """What a custom_log getter reads of a request context (``gateway.model.context.RequestContext``)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def query(self) -> Mapping[str, str]: ...

    @property
    def request(self) -> Any: ...  # the aiohttp request (cookies)

MAX_ITEMS = 10
MAX_VALUE = 512  # characters of one logged value
LOCATIONS = ("header", "query", "cookie")
_DERIVED_KEY = "custom_log"


@dataclass(frozen=True, slots=True)
class CustomField:
    field: str  # custom_data_log01 ...
    location: str
    name: str
    get: Callable[[RequestContext], str | None]


def _getter(location: str, name: str) -> Callable[[RequestContext], str | None]:
    if location == "header":
        return lambda ctx: ctx.headers.get(name)
    if location == "query":
        return lambda ctx: ctx.query.get(name)

    def cookie(ctx: RequestContext) -> str | None:
        if "Cookie" not in ctx.headers:
            return None
        morsel = ctx.request.cookies.get(name)
        return None if morsel is None else str(morsel)

    return cookie


def _clean(value: Any) -> str:
    # the vendor's printed examples carry stray backslashes ("\\header"); they are not part of the value
    return str(value).strip().lstrip("\\") if isinstance(value, str) else ""


def check_custom_log(index: Index, problems: list[str]) -> None:
    """Validate the feature and record its compiled fields in ``Index.derived``
    (problems: ``features[i].config...: reason``)."""
    fields: tuple[CustomField, ...] = ()
    found = feature_record(index, "custom_log")
    conf = feature_config(index, "custom_log")
    if found is not None and conf is not None:
        path = f"features[{found[0]}].config.custom_logs"
        items = conf.get("custom_logs")
        if not isinstance(items, list) or not items:
            problems.append(f"{path}: must be a list of 1..{MAX_ITEMS} {{location, name}} objects")
        elif len(items) > MAX_ITEMS:
            problems.append(f"{path}: at most {MAX_ITEMS} items (has {len(items)})")
        else:
            out: list[CustomField] = []
            for i, item in enumerate(items):
                loc = _clean(item.get("location")).lower() if isinstance(item, dict) else ""
                name = _clean(item.get("name")) if isinstance(item, dict) else ""
                if loc not in LOCATIONS:
                    problems.append(f"{path}[{i}].location: must be one of {', '.join(LOCATIONS)}")
                    continue
                if not name or len(name) > 128 or any(c in name for c in "\r\n\0"):
                    problems.append(f"{path}[{i}].name: must be 1..128 characters")
                    continue
                out.append(CustomField(f"custom_data_log{i + 1:02d}", loc, name, _getter(loc, name)))
            fields = tuple(out)
    index.derived[_DERIVED_KEY] = fields


def custom_fields(index: Index) -> tuple[CustomField, ...]:
    """The compiled custom_log fields of a validated snapshot (empty when the feature is off); the compiler
    copies them into ``Runtime.log_fields``."""
    fields: tuple[CustomField, ...] = index.derived.get(_DERIVED_KEY, ())
    return fields
