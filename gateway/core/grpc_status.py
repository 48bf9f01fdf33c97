"""gRPC status codes, and the one table that maps a gateway error to the status a gRPC caller sees.

Role in the pipeline: shared by the error renderer (a gateway error on a gRPC call becomes a trailers-only
answer, :mod:`gateway.pipeline.grpc`) and the GRPC backend (statuses the relay itself decides, such as an
expired deadline mid-stream). Documented in docs/http2-grpc.md.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

GRPC_STATUS_KEY = "grpc_status"  # RequestContext.extras key: the call's gRPC status (access log, metrics)

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 7, 8, 12, 13, 14, 16

NAMES: Final[dict[int, str]] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED",
    11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# gateway response type -> gRPC status
BY_RESPONSE_TYPE: Final[dict[str, int]] = {
    "NOT_FOUND": UNIMPLEMENTED,
    "AUTH_FAILURE": UNAUTHENTICATED,
    "AUTH_HEADER_MISSING": UNAUTHENTICATED,
    "AUTHORIZER_IDENTITIES_FAILURE": UNAUTHENTICATED,
    "THIRD_AUTH_FAILURE": UNAUTHENTICATED,
    "THIRD_AUTH_IDENTITIES_FAILURE": UNAUTHENTICATED,
    "ACCESS_DENIED": PERMISSION_DENIED,
    "UNAUTHORIZED": PERMISSION_DENIED,  # the app is not authorized for the API
    "THROTTLED": RESOURCE_EXHAUSTED,
    "BACKEND_TIMEOUT": DEADLINE_EXCEEDED,
    "BACKEND_UNAVAILABLE": UNAVAILABLE,
    "REQUEST_PARAMETERS_FAILURE": INVALID_ARGUMENT,
    "AUTHORIZER_FAILURE": INTERNAL,
    "AUTHORIZER_CONF_FAILURE": INTERNAL,
    "THIRD_AUTH_CONF_FAILURE": INTERNAL,
}

# HTTP status of a non-gRPC answer -> gRPC status (the gRPC project's "HTTP to gRPC status code mapping")
BY_HTTP_STATUS: Final[dict[int, int]] = {
    400: INTERNAL, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: UNIMPLEMENTED, 429: UNAVAILABLE,
    502: UNAVAILABLE, 503: UNAVAILABLE, 504: UNAVAILABLE,
}


def for_error(error_type: str, status: int) -> int:
    """The gRPC status of a gateway error (response type first; DEFAULT_4XX/5XX by their HTTP status)."""
    code = BY_RESPONSE_TYPE.get(error_type)
    if code is not None:
        return code
    if status == 413:
        return RESOURCE_EXHAUSTED
    if status == 503:
        return UNAVAILABLE
    return INVALID_ARGUMENT if status < 500 else INTERNAL


def encode_message(message: str) -> str:
    """``grpc-message`` is percent-encoded UTF-8 (the gRPC wire spec)."""
    return quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
