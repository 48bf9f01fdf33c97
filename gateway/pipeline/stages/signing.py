"""Backend signature keys (seed 002 §3.6/§3.7; spec 02 §3; spec 03 §3): sign what the gateway sends.

Role in the pipeline: step 16 of spec 02 §11.2. At config-load time this module validates the ``signs``
and ``sign_bindings`` collections, compiles each bound key once (AES cipher parameters, private keys), and
its plan stage (:func:`apply_signing`) appends a request hook to every HTTP backend plan (default and policy
backends) of a bound publication. :class:`gateway.backends.http.HttpTarget` runs the hook before *each*
attempt, after the parameter mapping and the Host header are final, so a retry is re-signed with a fresh
``X-Sdk-Date``. MOCK and FUNCTION backends are not signed.

Wire formats (docs/signing.md has the exact recipes and the backend-side checks in :mod:`gateway.contrib.verify`):

* ``hmac``       ``X-Sdk-Date`` + ``Authorization: SDK-HMAC-SHA256 Access=<key>, SignedHeaders=..., Signature=<hex>``
  (vendor algorithm, verifiable with the vendor's ``backend_signature.py``);
* ``basic``      ``Authorization: Basic base64(<key>:<secret>)``;
* ``aes``        ``X-Sdk-Date`` + ``Authorization: SDK-AES-128-CFB SignedHeaders=..., Signature=<base64
  AES-CFB(key, iv=secret, StringToSign)>`` (PROPOSAL: the vendor's wire format is not public);
* ``public_key`` ``X-Sdk-Date`` + ``Authorization: SDK-RSA-SHA256|SDK-ECDSA-SHA256|SDK-ED25519 Access=<sign id>,
  SignedHeaders=..., Signature=<base64 signature of StringToSign>``; the public key is served at
  ``<public_key_uri_prefix><sign id>`` on the public listener (PROPOSAL).

Feature ``custom_auth_header.backend_sign_header`` moves the value from ``Authorization`` to that header
(the caller's own ``Authorization`` is then forwarded untouched). A signing failure ends the request with
DEFAULT_5XX 500 APIG.0705 "Backend signature calculation failed.". Cost per attempt: one SHA-256 of the
body (hmac/aes/public_key; the body is read once and cached), one of the canonical request, one HMAC /
AES block run / private-key signature; ``basic`` adds a precomputed header only.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import StreamReader, web
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB lives in the "decrepit" module since cryptography 47
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from gateway.core.errors import GatewayError, not_found
from gateway.lib import sdk_hmac
from gateway.model.context import set_latency_headers
from gateway.snapshot.features import feature_config, feature_record
from gateway.snapshot.schema import Obj, S
from gateway.snapshot.validate import Index, unknown_publication

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.model.plan import BackendRequest
    from gateway.pipeline.spec import BuildContext, EndpointDraft, PlanDraft

log = logging.getLogger("gateway.pipeline.stages.signing")

SIGN_TYPES = ("hmac", "basic", "public_key", "aes")
AES_ALGORITHMS = {"aes-128-cfb": 16, "aes-256-cfb": 32}
DEFAULT_PUBLIC_KEY_PREFIX = "/apigw/authadv/v2/public-key/"

SIGN = Obj(
    {
        "id": S(True, min_len=1, max_len=64),
        "name": S(True, min_len=3, max_len=64, pattern=r"[A-Za-z][A-Za-z0-9_]*"),
        "sign_type": S(enum=SIGN_TYPES),
        # Required here: a generated value would be unknown to the backend that must verify it.
        "sign_key": S(True, min_len=1, max_len=512),
        "sign_secret": S(True, min_len=1, max_len=2048),
        "sign_algorithm": S(enum=tuple(AES_ALGORITHMS)),
    },
    output_only=frozenset({"create_time", "update_time", "bind_num", "ldapi_bind_num"}),
)

SIGN_BINDING = Obj(
    {"id": S(True, min_len=1, max_len=64), "sign_id": S(True), "publish_id": S(True)},
    output_only=frozenset({
        "api_id", "env_id", "env_name", "sign_name", "sign_key", "sign_secret", "sign_type", "req_method",
        "api_name", "api_type", "api_remark", "group_name", "binding_time",
    }),
)

COLLECTIONS = {"signs": (SIGN, "id"), "sign_bindings": (SIGN_BINDING, "id")}

# Per-type (key rule, secret rule): (regex, human-readable rule) from spec 02 §3.2 / seed 002 T3-367.
_B64ISH = r"[A-Za-z0-9+/][A-Za-z0-9_+/=-]"
_B64ISH_SECRET = r"[A-Za-z0-9+/][A-Za-z0-9_!@#$%+/=-]"
_RULES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "hmac": ((r"[A-Za-z0-9][A-Za-z0-9_-]{7,31}", "8-32 characters [A-Za-z0-9_-], starting with a letter or digit"),
             (r"[A-Za-z0-9][A-Za-z0-9_!@#$%-]{15,63}",
              "16-64 characters [A-Za-z0-9_!@#$%-], starting with a letter or digit")),
    "basic": ((r"[A-Za-z][A-Za-z0-9_-]{3,31}", "4-32 characters [A-Za-z0-9_-], starting with a letter"),
              (r"[A-Za-z0-9][A-Za-z0-9_!@#$%-]{7,63}",
               "8-64 characters [A-Za-z0-9_!@#$%-], starting with a letter or digit")),
    "public_key": ((_B64ISH + r"{7,511}", "8-512 characters [A-Za-z0-9_+/=-], starting with a letter, digit, + or /"),
                   (_B64ISH_SECRET + r"{15,2047}",
                    "16-2048 characters [A-Za-z0-9_!@#$%+/=-], starting with a letter, digit, + or /")),
}
_AES_CHARS = _B64ISH_SECRET
_HEADER_RX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,63}")

SIGN_FAILED = ("DEFAULT_5XX", "APIG.0705", "Backend signature calculation failed.")


def signing_failed() -> GatewayError:
    return GatewayError(*SIGN_FAILED, status=500)


# --- key material ---------------------------------------------------------------------------------

def load_key_pair(sign_key: str, sign_secret: str) -> tuple[Any, Any, str]:
    """(private key, public key, algorithm token) from base64 DER SubjectPublicKeyInfo / PKCS#8.

    Raises ValueError with a reason when they do not parse, are of an unsupported type, or do not match.
    """
    try:
        public = serialization.load_der_public_key(base64.b64decode(sign_key, validate=True))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError("sign_key: is not a base64 DER (SubjectPublicKeyInfo) public key") from exc
    try:
        private = serialization.load_der_private_key(base64.b64decode(sign_secret, validate=True), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("sign_secret: is not a base64 DER (PKCS#8, unencrypted) private key") from exc
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private.public_key().public_bytes(der, spki) != public.public_bytes(der, spki):
        raise ValueError("sign_secret: the private key does not match sign_key")
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ValueError("sign_secret: RSA keys must have at least 2048 bits")
        return private, public, "SDK-RSA-SHA256"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private, public, "SDK-ECDSA-SHA256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private, public, "SDK-ED25519"
    raise ValueError("sign_secret: key type not supported (use RSA >= 2048, EC or Ed25519)")


def aes_token(sign: dict[str, Any]) -> str:
    return "SDK-" + str(sign.get("sign_algorithm") or "").upper()


def private_sign(private: Any, data: bytes) -> bytes:
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(data, ec.ECDSA(hashes.SHA256()))
    return bytes(private.sign(data))


# --- validation -----------------------------------------------------------------------------------

def _check_sign(sign: dict[str, Any], path: str, problems: list[str], public_key_on: bool) -> None:
    kind = sign.get("sign_type") or "hmac"
    key, secret = sign.get("sign_key"), sign.get("sign_secret")
    if not isinstance(key, str) or not isinstance(secret, str) or kind not in SIGN_TYPES:
        return  # already reported by the schema
    algorithm = sign.get("sign_algorithm")
    if kind != "aes" and algorithm:
        problems.append(f"{path}.sign_algorithm: only allowed for sign_type aes")
    if kind == "aes":
        if algorithm not in AES_ALGORITHMS:
            problems.append(f"{path}.sign_algorithm: is required for sign_type aes (aes-128-cfb or aes-256-cfb)")
            return
        size = AES_ALGORITHMS[algorithm]
        if not re.fullmatch(_AES_CHARS + f"{{{size - 1}}}", key):
            problems.append(f"{path}.sign_key: must be exactly {size} characters [A-Za-z0-9_!@#$%+/=-] for "
                            f"{algorithm}, starting with a letter, digit, + or /")
        if not re.fullmatch(_AES_CHARS + "{15}", secret):
            problems.append(f"{path}.sign_secret: must be exactly 16 characters [A-Za-z0-9_!@#$%+/=-] (the IV), "
                            "starting with a letter, digit, + or /")
        return
    (key_rx, key_rule), (secret_rx, secret_rule) = _RULES[kind]
    if not re.fullmatch(key_rx, key):
        problems.append(f"{path}.sign_key: must be {key_rule} for sign_type {kind}")
    if not re.fullmatch(secret_rx, secret):
        problems.append(f"{path}.sign_secret: must be {secret_rule} for sign_type {kind}")
        return
    if kind == "public_key":
        if not public_key_on:
            problems.append(f"{path}.sign_type: public_key needs the public_key feature enabled")
        try:
            load_key_pair(key, secret)
        except ValueError as exc:
            problems.append(f"{path}.{exc}")


def check(index: Index, problems: list[str]) -> None:
    public_key_on = feature_config(index, "public_key") is not None
    for i, sign in enumerate(index.items("signs")):
        _check_sign(sign, f"signs[{i}]", problems, public_key_on)
    bound: dict[str, int] = {}
    for i, b in enumerate(index.items("sign_bindings")):
        path = f"sign_bindings[{i}]"
        if b.get("sign_id") not in index.by_id["signs"]:
            problems.append(f"{path}.sign_id: unknown signature key {b.get('sign_id')!r}")
        pid = b.get("publish_id")
        if pid not in index.publish_by_id:
            problems.append(f"{path}.publish_id: {unknown_publication(index, pid)}")
            continue
        if pid in bound:
            problems.append(f"{path}.publish_id: publication {pid!r} already has a signature key "
                            f"(sign_bindings[{bound[pid]}]); at most one per API and environment")
        else:
            bound[str(pid)] = i
    found = feature_record(index, "custom_auth_header")
    cfg = feature_config(index, "custom_auth_header")
    if found is not None and cfg is not None:
        name = cfg.get("backend_sign_header")
        if name not in (None, ""):
            low = str(name).lower()
            if (not isinstance(name, str) or not _HEADER_RX.fullmatch(name) or low.startswith(("x-apig-", "x-sdk-"))
                    or low in ("x-stage", "authorization")):
                problems.append(f"features[{found[0]}].config.backend_sign_header: must be 3-64 characters "
                                "[A-Za-z0-9_-] starting with a letter, not x-stage/authorization, not x-apig-*/x-sdk-*")
    pk = feature_config(index, "public_key")
    if pk is not None:
        prefix = pk.get("public_key_uri_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
            where = feature_record(index, "public_key")
            problems.append(f"features[{where[0] if where else 0}].config.public_key_uri_prefix: must start with /")



# --- request hooks --------------------------------------------------------------------------------

class BackendSigner:
    """The request hook of one bound key: sets the signature headers on a BackendRequest."""

    __slots__ = ("_compute", "header", "kind", "needs_body", "sign_id")

    def __init__(self, sign: dict[str, Any], header: str) -> None:
        self.sign_id = str(sign["id"])
        self.kind = str(sign.get("sign_type") or "hmac")
        self.header = header
        self.needs_body = self.kind != "basic"
        key, secret = str(sign["sign_key"]), str(sign["sign_secret"])
        compute: Callable[[BackendRequest, bytes], str]
        if self.kind == "basic":
            value = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")

            def compute(breq: BackendRequest, body: bytes) -> str:
                return value
        elif self.kind == "hmac":
            def compute(breq: BackendRequest, body: bytes) -> str:
                sts, signed = sdk_hmac.backend_string_to_sign(breq, body)
                return sdk_hmac.authorization(key, signed, sdk_hmac.signature(secret, sts))
        elif self.kind == "aes":
            token = aes_token(sign)
            cipher = Cipher(algorithms.AES(key.encode("utf-8")), CFB(secret.encode("utf-8")))

            def compute(breq: BackendRequest, body: bytes) -> str:
                sts, signed = sdk_hmac.backend_string_to_sign(breq, body, token)
                enc = cipher.encryptor()
                sig = base64.b64encode(enc.update(sts.encode("utf-8")) + enc.finalize()).decode("ascii")
                return f"{token} SignedHeaders={';'.join(signed)}, Signature={sig}"
        else:
            private, _public, token = load_key_pair(key, secret)
            sign_id = self.sign_id

            def compute(breq: BackendRequest, body: bytes) -> str:
                sts, signed = sdk_hmac.backend_string_to_sign(breq, body, token)
                sig = base64.b64encode(private_sign(private, sts.encode("utf-8"))).decode("ascii")
                return f"{token} Access={sign_id}, SignedHeaders={';'.join(signed)}, Signature={sig}"
        self._compute = compute

    def __call__(self, ctx: RequestContext, breq: BackendRequest) -> Awaitable[None] | None:
        if self.needs_body and isinstance(breq.body, StreamReader):
            return self._read_then_sign(ctx, breq)
        self._apply(breq, breq.body if isinstance(breq.body, bytes) else b"")
        return None

    async def _read_then_sign(self, ctx: RequestContext, breq: BackendRequest) -> None:
        breq.body = await ctx.read_body()  # the body hash needs it; 413 past the limit
        self._apply(breq, breq.body)

    def _apply(self, breq: BackendRequest, body: bytes) -> None:
        try:
            breq.headers[self.header] = self._compute(breq, body)
        except Exception as exc:  # bad header bytes, crypto backend failure ...: never a bare 500
            log.warning("backend signature with key %s failed: %s", self.sign_id, type(exc).__name__)
            raise signing_failed() from None


class SigningTables:
    """What this module derives once per snapshot (the compile memo, :meth:`BuildContext.once`)."""

    __slots__ = ("by_publish", "header", "public_key_prefix", "signers")

    def __init__(self, index: Index) -> None:
        signs = index.by_id.get("signs", {})
        self.by_publish: dict[str, dict[str, Any]] = {}
        for b in index.items("sign_bindings"):
            sign = signs.get(str(b.get("sign_id")))
            if sign is not None:
                self.by_publish.setdefault(str(b.get("publish_id")), sign)
        cfg = feature_config(index, "custom_auth_header") or {}
        self.header = str(cfg.get("backend_sign_header") or "Authorization")
        pk = feature_config(index, "public_key")
        self.public_key_prefix: str | None = None
        if pk is not None:
            self.public_key_prefix = str(pk.get("public_key_uri_prefix") or DEFAULT_PUBLIC_KEY_PREFIX)
        self.signers: dict[str, BackendSigner] = {}

    def signer(self, sign: dict[str, Any]) -> BackendSigner:
        sid = str(sign["id"])
        found = self.signers.get(sid)
        if found is None:
            found = self.signers[sid] = BackendSigner(sign, self.header)
        return found


def tables(build: BuildContext) -> SigningTables:
    return build.once("signing", lambda: SigningTables(build.index))


def apply_signing(plan: PlanDraft, backend: dict[str, Any], draft: EndpointDraft, build: BuildContext,
                  path: str) -> None:
    """Plan stage: an HTTP backend of a publication with a bound key gets the signing request hook (after
    every other header edit: the chain lists this stage after them)."""
    if getattr(plan.target, "kind", None) != "HTTP":
        return
    st = tables(build)
    sign = st.by_publish.get(draft.publish_id)
    if sign is None:
        return
    try:
        plan.request_hooks.append(st.signer(sign))
    except (ValueError, UnsupportedAlgorithm) as exc:
        build.problems.append(f"{path}: signature key {sign.get('id')!r} cannot be used: {exc}")


# --- public key endpoint (sign_type public_key) ---------------------------------------------------

def public_key_document(sign: dict[str, Any]) -> dict[str, Any]:
    _private, public, token = load_key_pair(str(sign["sign_key"]), str(sign["sign_secret"]))
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"id": sign["id"], "name": sign.get("name"), "sign_type": "public_key", "algorithm": token,
            "public_key": sign["sign_key"], "public_key_pem": pem.decode("ascii")}


def build_public_keys(build: BuildContext) -> Callable[[RequestContext], web.StreamResponse | None] | None:
    """Pre-route handler serving ``<public_key_uri_prefix><sign id>`` (None without the public_key feature)."""
    prefix = tables(build).public_key_prefix
    if prefix is None:
        return None
    keys = {sid: sign for sid, sign in build.index.by_id.get("signs", {}).items()
            if sign.get("sign_type") == "public_key"}
    docs: dict[str, bytes] = {}  # rendered on first request (public material only: never sign_secret)

    def serve_public_key(ctx: RequestContext) -> web.StreamResponse | None:
        if not ctx.path.startswith(prefix) or ctx.method not in ("GET", "HEAD"):
            return None
        sid = ctx.path[len(prefix):]
        sign = keys.get(sid)
        if sign is None:
            raise not_found("The public key does not exist.")
        body = docs.get(sid)
        if body is None:
            body = docs[sid] = orjson.dumps(public_key_document(sign))
        ctx.status = 200
        ctx.bytes_sent = len(body)
        headers = dict(ctx.response_headers)
        headers["X-Request-Id"] = ctx.request_id
        set_latency_headers(ctx, headers)
        headers["Cache-Control"] = "max-age=300"
        return web.Response(body=body, content_type="application/json", headers=headers)

    return serve_public_key
