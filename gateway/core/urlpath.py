"""Request-path hygiene: dot-segment removal before routing, safe re-encoding of backend path pieces.

Role in the pipeline: step 1 (before routing) and step 16 (building the backend request). aiohttp hands us
the *decoded* request path (``%2E%2E`` is already ``..``, ``%2F`` already ``/``, ``%0D%0A`` already a line
break). Two things follow, both security controls (docs/security.md):

* :func:`normalize` removes ``.`` and ``..`` segments (RFC 3986 §5.2.4, what nginx and Kong do before
  matching a location) so a caller cannot use ``/api/x/../../admin`` to match one API and reach another
  path of its backend; a path that climbs above the root is refused (400). Cheap when there is nothing to
  do: one substring test.
* :func:`encode_path` percent-encodes a decoded path segment by segment before it is written into the
  backend request line, so decoded ``?``, ``#``, spaces, CR/LF can never split the request line, inject
  headers or move text into the backend query (HTTP request splitting). :func:`encode_param` does the same
  for one ``{param}`` value and also encodes a value that is exactly ``.`` or ``..``.
"""

from __future__ import annotations

from urllib.parse import quote

from gateway.core.errors import bad_parameter

# RFC 3986 pchar minus the unreserved set (which quote never encodes): sub-delims, ':' and '@'
_PCHAR_SAFE = "!$&'()*+,;=:@"


def normalize(path: str) -> str:
    """``path`` without ``.``/``..`` segments; raises APIG.0201 when ``..`` would climb above ``/``."""
    if "/." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    last = len(segments) - 1
    for i, seg in enumerate(segments[1:], 1):
        if seg == ".":
            if i == last:
                out.append("")  # "/a/." -> "/a/"
            continue
        if seg == "..":
            if not out:
                raise bad_parameter("Invalid request path: it climbs above the root")
            out.pop()
            if i == last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


def encode_path(decoded: str) -> str:
    """Percent-encode a decoded path for the backend request line ('/' stays the separator)."""
    return "/".join(quote(seg, safe=_PCHAR_SAFE) for seg in decoded.split("/"))


def encode_param(value: str) -> str:
    """Percent-encode one backend ``{param}`` value: a single segment, never a dot segment."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


def clean_header_value(value: str) -> str:
    """A header value with CR, LF and NUL replaced by spaces (no header injection, no 500 from the writer)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        return value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value
