"""Gateway errors: the one exception type every pipeline stage raises.

Role in the pipeline: any stage (routing, validation, auth, throttling, forwarding) that has to end a
request raises :class:`GatewayError` with a response *type* from seed 002 §3.19 (``NOT_FOUND``,
``THROTTLED`` ...) and a data-plane error *code* (``APIG.0101`` ...). The response layer
(:mod:`gateway.model.responses`) renders it through the API group's response template. Nothing else turns
errors into HTTP responses, so every error a caller sees has the same shape.

The table of default statuses is spec 02 §10.2 / 03 §6c; the codes and messages are spec 03 §6b. Every
error a stage raises is made by a named constructor in this module (the catalogue at the end, grouped by
stage), so the type / code / status table is reviewable in one place.

:class:`SnapshotError` is the config-time counterpart: a snapshot (file, push, import) that cannot be
loaded, validated or compiled, with every problem as ``path: reason``. It never reaches a caller.
"""

from __future__ import annotations

from typing import Final

# Response type -> default HTTP status (None: keep the status the error carries).
RESPONSE_TYPES: Final[dict[str, int | None]] = {
    "ACCESS_DENIED": 403,
    "AUTH_FAILURE": 401,
    "AUTH_HEADER_MISSING": 401,
    "AUTHORIZER_FAILURE": 500,
    "AUTHORIZER_CONF_FAILURE": 500,
    "AUTHORIZER_IDENTITIES_FAILURE": 401,
    "BACKEND_UNAVAILABLE": 502,
    "BACKEND_TIMEOUT": 504,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "DEFAULT_4XX": None,
    "DEFAULT_5XX": None,
    "NOT_FOUND": 404,
    "REQUEST_PARAMETERS_FAILURE": 400,
    "THIRD_AUTH_FAILURE": 401,
    "THIRD_AUTH_IDENTITIES_FAILURE": 401,
    "THIRD_AUTH_CONF_FAILURE": 500,
    "ORCHESTRATION_PARAMETER_NOT_FOUND": 400,
    "ORCHESTRATION_FAILURE": 400,
}

# Spellings the vendor document uses interchangeably (spec 02 §10.2); we emit the canonical form.
RESPONSE_TYPE_ALIASES: Final[dict[str, str]] = {
    "AUTHORIZER_CONFIG_FAILURE": "AUTHORIZER_CONF_FAILURE",
    "AUTHORIZER_IDENTITY_FAILURE": "AUTHORIZER_IDENTITIES_FAILURE",
    "THIRD_AUTH_CONFIG_FAILURE": "THIRD_AUTH_CONF_FAILURE",
    "THIRD_AUTH_IDENTITY_FAILURE": "THIRD_AUTH_IDENTITIES_FAILURE",
}


def canonical_response_type(name: str) -> str:
    """Map an alias spelling of a response type to the one the gateway emits."""
    return RESPONSE_TYPE_ALIASES.get(name, name)


class GatewayError(Exception):
    """A request-ending error with the spec's response type, error code and message.

    ``status`` overrides the type's default status (required for DEFAULT_4XX / DEFAULT_5XX).
    ``headers`` are extra response headers (e.g. ``Retry-After`` on THROTTLED).
    The message is sent to the caller: it must never contain a secret or an expected signature.
    """

    __slots__ = ("code", "error_type", "headers", "message", "status")

    def __init__(
        self,
        error_type: str,
        code: str,
        message: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error_type} {code}: {message}")
        self.error_type = canonical_response_type(error_type)
        self.code = code
        self.message = message
        default = RESPONSE_TYPES.get(self.error_type)
        resolved = status if status is not None else default
        self.status: int = resolved if resolved is not None else (500 if "5XX" in error_type else 400)
        self.headers = headers


class SnapshotError(Exception):
    """Config time, not request time: a snapshot that cannot be loaded or compiled; ``problems`` lists
    each as ``path: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
        self.problems = problems


# Ready-made constructors for the errors raised from more than one place.
def not_found(message: str = "The API does not exist or has not been published in the environment.") -> GatewayError:
    return GatewayError("NOT_FOUND", "APIG.0101", message)


def bad_parameter(message: str) -> GatewayError:
    return GatewayError("REQUEST_PARAMETERS_FAILURE", "APIG.0201", message)


def backend_unavailable(message: str = "Backend unavailable.") -> GatewayError:
    return GatewayError("BACKEND_UNAVAILABLE", "APIG.0202", message)


def backend_timeout(message: str = "Backend timeout.") -> GatewayError:
    return GatewayError("BACKEND_TIMEOUT", "APIG.0203", message)


def body_too_large() -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0201", "Request entity too large.", status=413)


def bad_body() -> GatewayError:
    """The caller's body broke off or was malformed (bad chunk size, connection lost mid-body)."""
    return GatewayError("DEFAULT_4XX", "APIG.0201", "Invalid request body.", status=400)


def body_timeout() -> GatewayError:
    """The caller paused within its own request body longer than ``client_body_timeout_s``."""
    return GatewayError("DEFAULT_4XX", "APIG.0201", "Request body timed out.", status=408)


def internal_error(message: str = "Internal server error.") -> GatewayError:
    return GatewayError("DEFAULT_5XX", "APIG.0601", message, status=500)


# --- The catalogue: every request-ending error, by the stage that raises it ------------------------------
# (type, code, status): read this block to review what a caller can receive.

def grpc_needs_http2() -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0201", "gRPC APIs are served over HTTP/2 only.", status=505)


def backend_path_param_missing(name: str) -> GatewayError:
    return bad_parameter(f"Invalid parameter value: backend path parameter {name} has no value")


# tls
def protocol_not_supported(supported: str) -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0607", f"The following protocol is supported: {supported}", status=400)


def ssl_version_not_supported(version: str) -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0204", f"SSL protocol is not supported: {version}", status=400)


def client_cert_failed() -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0205", "Verify client certificate failed", status=400)


# ACLs (403)
def ip_denied(message: str = "The IP address is not authorized to access the API.",
              code: str = "APIG.0402") -> GatewayError:
    return GatewayError("ACCESS_DENIED", code, message)


def no_account() -> GatewayError:
    return GatewayError("ACCESS_DENIED", "APIG.0306", "API access denied.")


def account_denied() -> GatewayError:
    return GatewayError("ACCESS_DENIED", "APIG.0302", "The IAM user is not authorized to access the API.")


# APP authentication and app checks
APP_AUTH_PREFIX = "Incorrect app authentication information"


def app_auth_failure(reason: str) -> GatewayError:
    return GatewayError("AUTH_FAILURE", "APIG.0303", f"{APP_AUTH_PREFIX}: {reason}")


def app_header_missing(reason: str) -> GatewayError:
    return GatewayError("AUTH_HEADER_MISSING", "APIG.0303", f"{APP_AUTH_PREFIX}: {reason}")


def app_frozen() -> GatewayError:
    return GatewayError("DEFAULT_4XX", "APIG.0502", "The app has been frozen.", status=405)


def app_ip_denied() -> GatewayError:
    return GatewayError("ACCESS_DENIED", "APIG.0405", "The app is not accessed from a trusted IP address.")


def app_unauthorized() -> GatewayError:
    return GatewayError("UNAUTHORIZED", "APIG.0304", "The app is not authorized to access the API.", status=403)


def service_unavailable(service: str) -> GatewayError:
    """An authentication service (IAM, the app token store) cannot answer: 503."""
    return GatewayError("DEFAULT_5XX", "APIG.0613", f"The {service} service is currently unavailable.", status=503)


# IAM authentication
IAM_AUTH_PREFIX = "Incorrect IAM authentication information"


def iam_failure(reason: str) -> GatewayError:
    return GatewayError("AUTH_FAILURE", "APIG.0301", f"{IAM_AUTH_PREFIX}: {reason}")


def iam_token_missing() -> GatewayError:
    return GatewayError("AUTH_HEADER_MISSING", "APIG.0301", f"{IAM_AUTH_PREFIX}: x-auth-token not found")


# custom authorizers
def authorizer_conf_failure(word: str, reason: str) -> GatewayError:
    return GatewayError("AUTHORIZER_CONF_FAILURE", "APIG.0601", f"Internal server error: {word} authorizer {reason}")


def authorizer_identity_failure(name: str, problem: str) -> GatewayError:
    return GatewayError("AUTHORIZER_IDENTITIES_FAILURE", "APIG.0305",
                        f"Incorrect authentication information: identity source {name} is {problem}")


def authorizer_denied(word: str) -> GatewayError:
    return GatewayError("AUTHORIZER_FAILURE", "APIG.0305", f"Incorrect authentication information: {word} authorizer")


# third-party authentication (plug-in)
def third_auth_identity_failure(message: str) -> GatewayError:
    return GatewayError("THIRD_AUTH_IDENTITIES_FAILURE", "APIG.0313",
                        f"Incorrect third-party authentication information,identities error: {message}")


def third_auth_refused(message: str = "Incorrect third-party authentication information,auth fail") -> GatewayError:
    return GatewayError("THIRD_AUTH_FAILURE", "APIG.0312", message)


def third_auth_denied() -> GatewayError:
    return GatewayError("THIRD_AUTH_FAILURE", "APIG.0314",
                        "Incorrect third-party authentication information,access deny", status=403)


def third_auth_conf_failure() -> GatewayError:
    return GatewayError("THIRD_AUTH_CONF_FAILURE", "APIG.0616",
                        "Incorrect third-party authentication request information")


# throttling (429, with Retry-After)
THROTTLE_THRESHOLD = "The throttling threshold has been reached"


def throttled(detail: str, retry_after: str) -> GatewayError:
    return GatewayError("THROTTLED", "APIG.0308", f"{THROTTLE_THRESHOLD}: {detail}",
                        headers={"Retry-After": retry_after})


# backends
def circuit_open() -> GatewayError:
    return GatewayError("DEFAULT_5XX", "APIG.0202", "Backend unavailable: circuit breaker open.", status=503)


def no_backend() -> GatewayError:
    return GatewayError("BACKEND_UNAVAILABLE", "APIG.0610", "No backend available.")


def invalid_function_response(reason: str) -> GatewayError:
    return GatewayError("DEFAULT_5XX", "APIG.0601", f"Internal server error: invalid function response: {reason}",
                        status=500)
