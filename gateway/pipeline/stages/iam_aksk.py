"""IAM AK/SK-signed calls for ``auth_type: IAM`` APIs: the same SDK-HMAC-SHA256 scheme as app signatures,
with IAM access keys instead of AppKey/AppSecret.

Role in the pipeline: the IAM stage (:mod:`gateway.pipeline.stages.iam`, order 20) calls
:meth:`AkSkVerifier.verify` when a call to an IAM API carries no ``X-Auth-Token`` but an
``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=..., Signature=...`` header. The identity of
the access key then feeds exactly what a token's identity feeds: ``ctx.user_id`` (``$context.userId``),
the USER throttling dimension (the account = domain id) and DOMAIN / DOMAIN_ID ACLs.

Access keys come from the snapshot collection ``iam_credentials`` (shaped like IAM's own permanent access
key records): ``{access, secret, user_id, user_name, domain_id, domain_name, status: active|inactive}``.
``secret`` is a credential: masked by the admin API, compared only through the HMAC, never logged. The
remote token verifier is not asked: IAM's token-validation API does not hand out secret keys.

Checks, in the order the vendor reports them (errors are ``AUTH_FAILURE`` 401 ``APIG.0301``
"Incorrect IAM authentication information: ..."): ``X-Sdk-Date`` present and well formed, within
``app_auth_clock_skew_s`` of the gateway clock; the access key known and active ("Get secretKey
failed,ak:******,err:ak not exist" — the key itself is never echoed); ``host`` signed; each signed header
present once; the body hash (``X-Sdk-Content-Sha256``, else the body read within the size limit); the
signature compared in constant time ("verify aksk signature fail").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core.errors import iam_failure
from gateway.lib import sdk_signer
from gateway.snapshot.schema import Obj, S

if TYPE_CHECKING:
    from gateway.model.context import RequestContext
    from gateway.pipeline.spec import BuildContext
    from gateway.snapshot.validate import Index

SCHEME = "SDK-HMAC-SHA256"

IAM_CREDENTIAL = Obj(
    {
        "access": S(True, min_len=8, max_len=128, pattern=r"[A-Za-z0-9][A-Za-z0-9_-]*"),
        "secret": S(True, min_len=8, max_len=128),
        "user_id": S(True, min_len=1, max_len=64),
        "user_name": S(max_len=64),
        "domain_id": S(max_len=64),
        "domain_name": S(max_len=64),
        "status": S(enum=("active", "inactive")),
        "description": S(max_len=255),
    },
    output_only=frozenset({"create_time", "last_use_time"}),
)

COLLECTIONS = {"iam_credentials": (IAM_CREDENTIAL, "access")}


@dataclass(frozen=True, slots=True)
class AkSkIdentity:
    user_id: str
    user_name: str | None
    domain_id: str | None
    domain_name: str | None
    access: str


@dataclass(frozen=True, slots=True)
class _Key:
    secret: str
    active: bool
    identity: AkSkIdentity


class AkSkVerifier:
    """The snapshot's access keys; :meth:`verify` checks one signed call."""

    __slots__ = ("keys", "skew")

    def __init__(self, index: Index, skew: float) -> None:
        self.skew = skew
        self.keys: dict[str, _Key] = {}
        for rec in index.items("iam_credentials"):
            access = str(rec["access"])
            ident = AkSkIdentity(str(rec["user_id"]), rec.get("user_name"), rec.get("domain_id"),
                                 rec.get("domain_name"), access)
            self.keys[access] = _Key(str(rec["secret"]), rec.get("status", "active") == "active", ident)

    async def verify(self, ctx: RequestContext, value: str) -> AkSkIdentity:
        creds = sdk_signer.parse_authorization(value)
        if creds is None:
            raise iam_failure("authorization is not an SDK-HMAC-SHA256 signature "
                           "(Access=..., SignedHeaders=..., Signature=...)")
        headers = ctx.headers
        sdk_date, problem = sdk_signer.check_date(headers.get(sdk_signer.HEADER_DATE), self.skew)
        if problem is not None:
            raise iam_failure(problem)
        key = self.keys.get(creds.access)
        if key is None or not key.active:
            raise iam_failure("Get secretKey failed,ak:******,err:ak not exist")
        if "host" not in creds.signed_headers:
            raise iam_failure("SignedHeaders must include host")
        for name in creds.signed_headers:
            n = len(headers.getall(name, ()))
            if n != 1:
                raise iam_failure(f"signed header {name[:64]} not found" if n == 0
                               else f"signed header {name[:64]} appears more than once")
        claimed = headers.getall(sdk_signer.HEADER_CONTENT_SHA256, ())
        if len(claimed) > 1:
            raise iam_failure("x-sdk-content-sha256 appears more than once")
        digest = claimed[0].strip() if claimed else sdk_signer.payload_hash(await ctx.read_body())
        path, query = sdk_signer.split_target(ctx.request.raw_path)
        ok = sdk_signer.verify(key.secret, creds.signature, ctx.method, path, sdk_signer.parse_query(query),
                               headers, creds.signed_headers, digest, sdk_date)
        if not ok:
            raise iam_failure("verify aksk signature fail")
        if claimed and digest != sdk_signer.UNSIGNED_PAYLOAD and \
                digest.lower() != sdk_signer.payload_hash(await ctx.read_body()):
            raise iam_failure("x-sdk-content-sha256 does not match the body")
        return key.identity


def aksk_verifier(build: BuildContext) -> AkSkVerifier | None:
    """The access keys of the snapshot (None when it has none), compiled once per snapshot."""
    index = build.index
    skew = float(build.settings.app_auth_clock_skew_s)
    return build.once("iam_aksk", lambda: AkSkVerifier(index, skew) if index.items("iam_credentials") else None)


def check_credentials(index: Index, problems: list[str]) -> None:
    """A user's access keys name one account: the same ``user_id`` never appears with two ``domain_id``s."""
    domains: dict[str, tuple[int, Any]] = {}
    for i, rec in enumerate(index.items("iam_credentials")):
        uid, dom = rec.get("user_id"), rec.get("domain_id")
        first = domains.setdefault(str(uid), (i, dom))
        if first[1] != dom:
            problems.append(f"iam_credentials[{i}].domain_id: user {uid!r} already belongs to domain "
                            f"{first[1]!r} (iam_credentials[{first[0]}])")

