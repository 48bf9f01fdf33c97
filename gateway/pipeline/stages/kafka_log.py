"""The ``kafka_log`` plug-in, compile-time half: content schema, validation, and the per-publication plan.

Role in the pipeline: config-load time. :func:`validate` (listed in ``chain.PLUGIN_TYPES``) checks a plug-in's
content (the vendor's ``KafkaLogContent``: ``broker_list``, ``topic``, ``key``, ``max_retry_count``,
``retry_backoff``, ``sasl_config``, ``meta_config``; the seed's ``sas_*`` spellings accepted) and compiles it
into a :class:`KafkaLogPlan`; :func:`build_log_plugin` puts the bound plug-in's plan on the endpoint
(``Endpoint.log_plugin``). Shipping the records after the response is :mod:`gateway.observe.kafka_log`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.snapshot.plugins import bound_plugin
from gateway.snapshot.schema import B, I, L, O, Obj, S, check

if TYPE_CHECKING:
    from gateway.pipeline.spec import BuildContext, EndpointDraft
    from gateway.snapshot.validate import Index

MAX_RECORD = 4096  # bytes of one record (the vendor's limit); larger ones lose their bulky parts first
MAX_VALUE = 1024  # characters of one header / query / body value
BATCH = 200
PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# the fields the vendor logs when meta_config does not say otherwise
DEFAULT_SYSTEM = ("start_time", "request_id", "client_ip", "request_time", "http_status", "scheme", "request_method",
                  "host", "uri", "upstream_addr", "upstream_status", "upstream_response_time",
                  "http_x_forwarded_for", "http_user_agent", "error_type")
SYSTEM_FIELDS = (
    "start_time", "request_id", "client_ip", "api_id", "user_name", "app_id", "access_model1", "request_time",
    "http_status", "server_protocol", "scheme", "request_method", "host", "api_uri_mode", "uri", "request_size",
    "response_size", "upstream_uri", "upstream_addr", "upstream_status", "upstream_connect_time",
    "upstream_header_time", "upstream_response_time", "all_upstream_response_time", "region_id", "auth_type",
    "http_x_forwarded_for", "http_user_agent", "error_type", "access_model2", "inner_time", "proxy_protocol_vni",
    "proxy_protocol_vpce_id", "proxy_protocol_addr", "body_bytes_sent", "api_name", "app_name", "provider_app_id",
    "provider_app_name", *(f"custom_data_log{i:02d}" for i in range(1, 11)), "response_source",
)
SASL = Obj({
    "security_protocol": S(enum=PROTOCOLS),
    "sasl_mechanisms": S(enum=MECHANISMS),
    "sasl_username": S(max_len=256),
    "sasl_password": S(max_len=256),
    "ssl_ca_content": S(max_len=65535),
}, open=True)  # meta_config may sit here (vendor examples)
CALL_DATA = Obj({
    "log_request_header": B(), "request_header_filter": S(max_len=1024),
    "log_request_query_string": B(), "request_query_string_filter": S(max_len=1024),
    "log_request_body": B(),
    "log_response_header": B(), "response_header_filter": S(max_len=1024),
    "log_response_body": B(),
    "custom_authorizer": O(Obj({"frontend": L(S(max_len=64), max_len=50), "backend": L(S(max_len=64), max_len=50)})),
})
META = Obj({"system": O(Obj({name: B() for name in SYSTEM_FIELDS})), "call_data": O(CALL_DATA)})
CONTENT = Obj({
    "broker_list": L(S(min_len=3, max_len=255, pattern=r"[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}"), True, min_len=1,
                     max_len=20),
    "topic": S(True, min_len=1, max_len=249, pattern=r"[A-Za-z0-9._-]+"),
    "key": S(max_len=255),
    "max_retry_count": I(min=0, max=5),
    "retry_backoff": I(min=1, max=10),
    "sasl_config": O(SASL),
    "meta_config": O(META),
})


@dataclass(frozen=True)
class KafkaLogPlan:
    """A validated kafka_log plug-in: where to send and what to put in each record."""

    brokers: tuple[str, ...]
    topic: str
    key: bytes | None
    retries: int
    backoff_s: float
    protocol: str
    mechanism: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ca: str | None = field(default=None, repr=False)
    system: tuple[str, ...] = DEFAULT_SYSTEM
    req_headers: tuple[str, ...] | None = None  # lower-case patterns; None: not logged
    req_query: tuple[str, ...] | None = None
    req_body: bool = False
    resp_headers: tuple[str, ...] | None = None
    frontend_keys: tuple[str, ...] = ()
    backend_keys: tuple[str, ...] = ()

    def connection(self) -> tuple[Any, ...]:
        """What identifies one producer: the same for two plug-ins that may share it."""
        return (self.brokers, self.protocol, self.mechanism, self.username, self.password, self.ca)


def _patterns(enabled: Any, text: Any) -> tuple[str, ...] | None:
    if enabled is not True:
        return None
    items = [p.strip().lower() for p in str(text or "").split(",") if p.strip()]
    return tuple(items) or ("*",)


def validate(content: dict[str, Any], path: str, problems: list[str], index: Index) -> KafkaLogPlan | None:
    content = dict(content)
    raw_sasl = content.get("sasl_config", content.pop("sas_config", None))
    sasl: dict[str, Any] = {}
    if isinstance(raw_sasl, dict):
        sasl = {("sasl_" + k[4:] if k.startswith("sas_") else k): v for k, v in raw_sasl.items()}
        if "meta_config" in sasl and "meta_config" not in content:
            content["meta_config"] = sasl.pop("meta_config")
        sasl.pop("meta_config", None)
        content["sasl_config"] = sasl
    before = len(problems)
    check(CONTENT, content, path, problems)
    if len(problems) > before:
        return None
    protocol = str(sasl.get("security_protocol") or "PLAINTEXT")
    user, password = sasl.get("sasl_username") or None, sasl.get("sasl_password") or None
    if protocol != "PLAINTEXT" and (not user or not password):
        problems.append(f"{path}.sasl_config.sasl_username: username and password are required with {protocol}")
        return None
    meta = content.get("meta_config") or {}
    system_sw = meta.get("system")
    system = DEFAULT_SYSTEM if not isinstance(system_sw, dict) else tuple(
        name for name in SYSTEM_FIELDS if system_sw.get(name) is True)
    calls = meta.get("call_data") or {}
    auth = calls.get("custom_authorizer") or {}
    return KafkaLogPlan(
        brokers=tuple(content["broker_list"]), topic=content["topic"],
        key=content["key"].encode() if content.get("key") else None,
        retries=int(content.get("max_retry_count") or 0), backoff_s=float(content.get("retry_backoff") or 1),
        protocol=protocol, mechanism=str(sasl.get("sasl_mechanisms") or "PLAIN"), username=user, password=password,
        ca=sasl.get("ssl_ca_content") or None, system=system,
        req_headers=_patterns(calls.get("log_request_header"), calls.get("request_header_filter")),
        req_query=_patterns(calls.get("log_request_query_string"), calls.get("request_query_string_filter")),
        req_body=calls.get("log_request_body") is True,
        resp_headers=_patterns(calls.get("log_response_header"), calls.get("response_header_filter")),
        frontend_keys=tuple(auth.get("frontend") or ()), backend_keys=tuple(auth.get("backend") or ()),
    )


def build_log_plugin(draft: EndpointDraft, build: BuildContext) -> tuple[str, KafkaLogPlan] | None:
    """(plug-in id, plan) of the publication's bound kafka_log plug-in, read by the completion hook."""
    bp = bound_plugin(build.index, str(draft.api["id"]), draft.env_id, "kafka_log")
    return (bp.id, bp.config) if bp is not None else None
