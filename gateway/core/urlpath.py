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

Transparency (docs/parameters.md "What else reaches the backend"): the parts of the path the gateway does not
map (an SWA suffix, a path forwarded as is) keep the caller's own encoding when it is safe, so ``%2F`` inside a
segment stays ``%2F`` instead of becoming a segment separator (:func:`raw_tail`).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, unquote_plus

from gateway.core.errors import bad_parameter

# RFC 3986 pchar minus the unreserved set (which quote never encodes): sub-delims, ':' and '@'
_PCHAR_SAFE = "!$&'()*+,;=:@"
# every printable ASCII character but space: what a raw query keeps as is
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
# one raw path segment that can go into a request line as is: pchar characters and well-formed %XX escapes
_RAW_SEGMENT_RX = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*")
# text that ``quote(text, safe="")`` returns unchanged: the RFC 3986 unreserved characters only
_UNRESERVED_RX = re.compile(r"[A-Za-z0-9._~-]*")


def quote_component(text: str) -> str:
    """``quote(text, safe="")`` (one query name or value, one path parameter), without the call when there is
    nothing to encode (the usual case: ids, numbers, plain words: letters and digits are checked in C first)."""
    if text.isalnum() and text.isascii():
        return text
    return text if _UNRESERVED_RX.fullmatch(text) else quote(text, safe="")


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


def raw_tail(raw_path: str, decoded: str, count: int) -> str | None:
    """The caller's own encoding of the last ``count`` segments of ``decoded`` (``"/" + ...``), or None.

    ``raw_path`` is the request target's path as received (no query), ``decoded`` the path the gateway routed on.
    None (the caller then re-encodes the decoded text with :func:`encode_path`) when the raw path holds nothing
    that decoding changed, when dot-segment removal changed the path, when the tail would start inside a raw
    segment (a ``%2F`` straddling the boundary), or when a raw segment is not safe to forward verbatim.
    """
    if "%" not in raw_path or count <= 0:
        return None
    raw_segments = raw_path.split("/")
    if unquote(raw_path) != decoded:  # dot segments were removed: the raw text no longer lines up
        return None
    seen = 0
    k = len(raw_segments)
    while seen < count and k > 1:
        k -= 1
        seen += 1 + unquote(raw_segments[k]).count("/")
    if seen != count:
        return None
    tail = raw_segments[k:]
    if not all(_RAW_SEGMENT_RX.fullmatch(seg) for seg in tail):
        return None
    return "/" + "/".join(tail)


def split_target(target: str) -> tuple[str, str]:
    """An origin-form request target (``/p%2Fq?a=1#f``) -> (raw path, raw query), without building a URL."""
    path, _, query = target.partition("?")
    if "#" in query:
        query = query.split("#", 1)[0]
    elif "#" in path:
        path = path.split("#", 1)[0]
    return path, query


def raw_query_without(raw: str, drop: frozenset[str]) -> str:
    """The caller's raw query string minus the parameters named in ``drop`` (decoded names), otherwise verbatim:
    same encoding (``+`` stays ``+``), same order, same repeats, ``flag`` without ``=`` stays ``flag``."""
    if not raw.isascii() or not raw.isprintable() or " " in raw:  # never more than one token in a request line
        raw = quote(raw, safe=_QUERY_SAFE)
    if not drop or not raw:
        return raw
    if "&" not in raw:  # one parameter (the usual mapped query): kept or not, no list
        name = raw.partition("=")[0]
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        return "" if name in drop else raw
    kept = []
    for part in raw.split("&"):
        name = part.partition("=")[0]
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in drop:
            continue
        kept.append(part)
    return "&".join(kept)


def encode_param(value: str) -> str:
    """Percent-encode one backend ``{param}`` value: a single segment, never a dot segment."""
    if value.isalnum() and value.isascii():  # ids and numbers, checked in C
        return value
    if value in (".", ".."):
        return "%2E" * len(value)
    return value if _UNRESERVED_RX.fullmatch(value) else quote(value, safe="")


def clean_header_value(value: str) -> str:
    """A header value with CR, LF and NUL replaced by spaces (no header injection, no 500 from the writer)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        return value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value
