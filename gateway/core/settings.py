"""Process settings: listeners, limits, pools, Redis; one object with env-var and CLI overrides.

Role in the pipeline: read once at start-up; the server and every long-lived service take their knobs
from here. Precedence: CLI flag > ``GATEWAY_<NAME>`` environment variable > default. The full table is
in docs/operations.md.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any

MB = 1024 * 1024


@dataclass
class Settings:
    config: str | None = None
    listen: str = "0.0.0.0:8080"
    admin_listen: str = "127.0.0.1:9080"
    admin_token: str | None = None
    admin_token_required: bool = False
    # Debugging sub-domain given to each group created through the admin API: <group id>.<suffix>
    admin_group_domain_suffix: str = "apic.local"
    workers: int = 1
    redis_url: str | None = None
    # Redis topology (docs/operations-cluster.md): single (redis_url) | cluster | sentinel (both use redis_nodes)
    redis_mode: str = "single"  # How the gateway reaches Redis: single (redis_url), cluster or sentinel.
    redis_nodes: list[str] = field(default_factory=list)  # host:port list: cluster seed nodes, or the sentinels.
    redis_sentinel_master: str | None = None  # Master name watched by the sentinels (sentinel mode).
    redis_username: str | None = None  # ACL user of the Redis connections (all modes; a redis_url user wins).
    redis_password: str | None = None  # Password of the Redis connections (never logged).
    redis_sentinel_password: str | None = None  # Password of the sentinels themselves, when they require one.
    redis_tls: bool = False  # TLS to Redis (and to the sentinels); in single mode a rediss:// URL does the same.
    redis_tls_ca_file: str | None = None  # CA bundle that verifies the Redis servers (default: system store).
    redis_tls_cert_file: str | None = None  # Client certificate for Redis servers that require one.
    redis_tls_key_file: str | None = None  # Private key of redis_tls_cert_file.
    redis_tls_verify: bool = True  # Verify the Redis server certificate (turn off only for tests).
    distribution_prefix: str = "gw"  # Redis keys/channel of snapshot distribution (docs/operations-cluster.md)
    watch: bool = False  # reload --config when its files change (mtime poll)
    watch_interval_s: float = 1.0
    # directory where every accepted snapshot is persisted (atomically) and reloaded from at start-up;
    # see docs/operations-cluster.md for which of it and --config wins (unset = nothing persisted)
    state_dir: str | None = None
    incremental_compile: bool = True  # a change to a few APIs recompiles only what it touches (off: compile whole)
    # request limits (spec 03 "Other run-time facts": 12 MB body, 32 KB URI line / header, 128 KB headers)
    max_body_bytes: int = 12 * MB
    max_line_bytes: int = 32 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 128
    header_read_timeout_s: float = 10.0
    client_body_timeout_s: float = 8.0  # vendor request_custom_config.client_body_timeout (default 8 s)
    keepalive_timeout_s: float = 75.0
    backlog: int = 1024
    # public listener: "fast" (gateway/process/http1.py, llhttp parser) or "aiohttp" (the previous one, kept
    # selectable for one release)
    public_listener: str = "fast"
    # backends
    max_backend_timeout_ms: int = 60000
    pool_size_per_host: int = 256
    pool_size_total: int = 4096
    backend_keepalive_s: float = 30.0
    backend_ca_file: str | None = None
    # VPC channels (docs/channels.md): consecutive connection failures that eject a member, and for how
    # long a member without active health checks stays ejected
    channel_passive_failures: int = 1
    channel_eject_s: float = 10.0
    upstream_client: str = "fast"  # "fast" (gateway/lib/h1client.py) or "aiohttp"
    # functions and custom authorizers (docs/functions.md)
    function_workers: int = 16  # thread pool for synchronous in-process handlers
    function_max_pending_async: int = 1000  # async (fire-and-forget) invocations in flight
    function_max_response_bytes: int = 6 * MB  # largest function answer accepted
    authorizer_cache_entries: int = 10000  # authorizer decisions cached (LRU) across all authorizers
    # TLS (docs/tls.md): backend verification / client certificate, and the optional HTTPS listener
    backend_ssl_verify: bool = True
    backend_client_cert_file: str | None = None
    backend_client_key_file: str | None = None
    https_listen: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_min_version: str = "TLSv1.2"
    tls_ciphers: str | None = None
    # HTTP/2 on the public listeners (docs/http2-grpc.md)
    http2: bool = True  # offer h2 by ALPN on the HTTPS listener
    h2c: bool = False  # prior-knowledge cleartext HTTP/2 on the plain listener
    h2_max_concurrent_streams: int = 100  # SETTINGS_MAX_CONCURRENT_STREAMS
    h2_max_header_list_bytes: int = 64 * 1024  # SETTINGS_MAX_HEADER_LIST_SIZE (decoded header block)
    h2_initial_window_bytes: int = 256 * 1024  # per-stream receive window (the connection's is 4x)
    h2_max_resets: int = 200  # client stream resets per 10 s before the connection is closed (rapid reset)
    h2_max_control_frames: int = 200  # SETTINGS + PING frames per 10 s before the connection is closed
    h2_stall_timeout_s: float = 30.0  # longest a response waits on a zero flow-control window
    # routing
    default_group: str | None = None
    trusted_proxies: list[str] = field(default_factory=list)
    # authentication (docs/auth.md)
    app_auth_clock_skew_s: int = 900  # |X-Sdk-Date - now| allowed for SDK-HMAC-SHA256 signatures
    app_code_allow_http: bool = False  # AppCode (X-Apig-AppCode) is HTTPS-only unless this is set
    iam_jwt_public_keys: str | None = None  # file with one or more PEM public keys (RS256/ES256 tokens)
    iam_jwks_file: str | None = None  # JWKS JSON file (keys selected by "kid")
    iam_jwt_algorithms: list[str] = field(default_factory=lambda: ["RS256", "ES256"])
    iam_jwt_issuer: str | None = None
    iam_jwt_audience: str | None = None
    iam_jwt_leeway_s: float = 30.0
    iam_remote_url: str | None = None  # token-validation endpoint (used instead of JWT when set)
    iam_remote_method: str = "GET"
    iam_remote_service_token: str | None = None
    iam_remote_timeout_s: float = 3.0
    iam_cache_ttl_s: float = 300.0
    iam_cache_size: int = 10000
    # observability
    access_log: bool = True
    access_log_path: str = "-"  # "-" = stdout, else a file opened in append mode
    access_log_query: bool = False  # log the query string (signature-like parameters are redacted)
    kafka_log_queue_size: int = 10000  # kafka_log plug-in: records waiting per plug-in; more are dropped (counted)
    latency_headers: str = "always"  # X-Apig-Latency / X-Apig-Upstream-Latency: always | debug | off
    metrics: bool = True  # Prometheus /metrics on the admin listener
    log_level: str = "INFO"
    shutdown_timeout_s: float = 30.0
    node_name: str = ""
    # throttling (docs/throttling.md)
    throttle_redis_failure: str = "local"  # On Redis failure: local (limits / throttle_nodes) | open | closed.
    throttle_nodes: int = 0  # Gateway processes sharing the limits, for the local fallback (0 = workers).
    throttle_redis_timeout_ms: int = 50  # Longest a request waits for a Redis throttling decision.
    throttle_redis_probe_ms: int = 500  # Probe interval while Redis is down (throttling).
    throttle_default_api_limit: int = 0  # Default per-API calls/s over all envs (vendor: 200; 0 = off).
    throttle_headers: str = "always"  # X-Apig-RateLimit-* headers: always | debug | off.
    throttle_key_prefix: str = "apig"  # Redis key prefix of the throttling counters.
    throttle_lease_max: int = 256  # Most units a node leases from Redis at once on a large limit (0 = no leases).

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(c, strict=False) for c in self.trusted_proxies]


def parse_workers(raw: str | int) -> int:
    """``--workers`` / ``GATEWAY_WORKERS``: a count, or ``auto`` = one worker per CPU this process may use."""
    if isinstance(raw, int):
        return raw
    text = str(raw).strip().lower()
    if text == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    value = int(text)
    if value < 1:
        raise ValueError("workers must be at least 1 (or auto)")
    return value


def _coerce(kind: Any, raw: str) -> Any:
    text = str(kind)
    if "bool" in text:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if "int" in text and "str" not in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    if "list" in text:
        return [x.strip() for x in raw.split(",") if x.strip()]
    return raw


def parse_assignment(text: str) -> tuple[str, Any]:
    """``name=value`` (the CLI's ``--set``) -> (field, coerced value); ValueError names what is wrong."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    kinds = {f.name: f.type for f in fields(Settings)}
    if not sep or name not in kinds:
        raise ValueError(f"--set {text!r}: expected NAME=VALUE with NAME one of the settings (docs/operations.md)")
    try:
        return name, parse_workers(raw) if name == "workers" else _coerce(kinds[name], raw)
    except ValueError:
        raise ValueError(f"--set {text!r}: {raw!r} is not a valid value for {name}") from None


# Settings.latency_headers -> RequestContext.latency_mode
LATENCY_OFF, LATENCY_DEBUG, LATENCY_ALWAYS = 0, 1, 2
LATENCY_MODES = {"off": LATENCY_OFF, "debug": LATENCY_DEBUG, "always": LATENCY_ALWAYS}


def latency_mode(setting: str) -> int:
    """Parse ``Settings.latency_headers`` (``always`` | ``debug`` | ``off``); ValueError names the choices."""
    try:
        return LATENCY_MODES[setting.strip().lower()]
    except KeyError:
        raise ValueError(f"latency_headers: must be one of always, debug, off (got {setting!r})") from None


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    s = Settings()
    for f in fields(Settings):
        raw = env.get(f"GATEWAY_{f.name.upper()}")
        if raw is not None:
            setattr(s, f.name, parse_workers(raw) if f.name == "workers" else _coerce(f.type, raw))
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(s, key, value)
    latency_mode(s.latency_headers)  # a bad value is refused at start, with the settings' other errors
    return s


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
