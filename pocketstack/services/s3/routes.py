"""The S3 API at /s3 over the object store: a bucket is a Swift container of the
credential's project account, an object is a Swift object (HTTP only here).

Path-style (/s3/<bucket>/<key>) and virtual-host-style (Host: <bucket>.<host>, /s3/<key>)
requests; authentication by AWS SigV4/V2 signatures with Keystone EC2 credentials.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import get_route_path

from pocketstack.api.http import run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, PocketError
from pocketstack.services.object_store import auth as swift_auth
from pocketstack.services.object_store.routes import close_if_body
from pocketstack.services.object_store.names import check_container
from pocketstack.services.s3 import (acl, multipart, objects, sigv4, subresources, support,
                                     views)
from pocketstack.services.s3.chunked import aws_chunked

# Existing containers (made through Swift) may have looser names; new buckets follow S3.
log = logging.getLogger("pocketstack.s3")

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]\Z", re.IGNORECASE)
CREATE_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]\Z")


class NoSuchBucket(PocketError):
    status = 404
    kind = "NoSuchBucket"


@dataclass
class S3Request:
    request: Request
    ctx: RequestContext
    service: Any
    account: str
    project_id: str
    bucket: str | None
    key: str | None
    identity: sigv4.Identity | None

    @property
    def store(self) -> Any:
        return self.service.store

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def headers(self) -> Any:
        return self.request.headers

    @property
    def query(self) -> Any:
        return self.request.query_params

    async def body(self, limit: int = 1 << 20) -> bytes:
        data = b""
        async for chunk in self.stream():
            data += chunk
            if len(data) > limit:
                raise BadRequest("Your request was too big.", kind="MaxMessageLengthExceeded")
        if self.identity and self.identity.payload_sha256 and \
                hashlib.sha256(data).hexdigest() != self.identity.payload_sha256:
            raise BadRequest("The provided 'x-amz-content-sha256' header does not match what "
                             "was computed.", kind="XAmzContentSHA256Mismatch")
        md5 = self.headers.get("content-md5")
        if md5 and base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()
                                    ).decode() != md5:
            raise BadRequest("The Content-MD5 you specified did not match what we received.",
                             kind="BadDigest")
        return data

    def stream(self) -> AsyncIterator[bytes]:
        encoding = self.headers.get("content-encoding", "")
        sha = self.headers.get("x-amz-content-sha256", "")
        if "aws-chunked" in encoding or sha.startswith("STREAMING-"):
            return aws_chunked(self.request.stream(),
                               self.identity.chunks if self.identity else None,
                               self.headers.get("x-amz-trailer"))
        return self.request.stream()


# EC2 credentials and the roles behind them are cached this long (seconds), like validated
# tokens: a deleted credential or removed role stops working within this delay.
AUTH_CACHE_SECONDS = 2.0


class S3App:
    def __init__(self, s3: Any) -> None:
        self.service = s3.store_service
        self.cloud = s3.cloud
        self._creds: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._contexts: dict[tuple[str, str], tuple[float, RequestContext]] = {}

    def _cached_credential(self, access: str) -> dict[str, Any] | None:
        hit = self._creds.get(access)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        cred = self.service.ec2_credential(access)
        if len(self._creds) > 10000:
            self._creds.clear()
        self._creds[access] = (time.monotonic() + AUTH_CACHE_SECONDS, cred)
        return cred

    async def _authenticate(self, request: Request, raw: str, raw_query: str
                            ) -> sigv4.Identity | None:
        access = sigv4.access_key(request.headers, raw_query)
        hit = self._creds.get(access) if access else None
        args = (request.method, raw, raw_query, request.headers, self._cached_credential,
                request.scope.get("root_path", ""))
        if hit is not None and hit[0] > time.monotonic():
            return sigv4.authenticate(*args)  # no I/O: HMACs only
        return await run(sigv4.authenticate, *args)

    async def _context_for(self, identity: sigv4.Identity) -> RequestContext:
        key = (identity.user_id, identity.project_id)
        hit = self._contexts.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        ctx = await run(self._context, identity)
        if len(self._contexts) > 10000:
            self._contexts.clear()
        self._contexts[key] = (time.monotonic() + AUTH_CACHE_SECONDS, ctx)
        return ctx

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        request = Request(scope, receive)
        try:
            response = await self.dispatch(request, get_route_path(scope))
        except PocketError as err:
            # the fault body's <RequestId> (api/faults.py) is this header's value
            err.headers = {**err.headers, **close_if_body(request),
                           "x-amz-request-id": scope.get("pocket.request_id", "")}
            raise
        response.headers.setdefault("x-amz-request-id", scope.get("pocket.request_id", ""))
        await response(scope, receive, send)

    def _virtual_bucket(self, request: Request) -> str | None:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
        if not host or host.replace(".", "").isdigit() or host.startswith("["):
            return None
        base = urlparse(self.cloud.settings.base_url).hostname or ""
        for suffix in {base, "localhost", "s3.localhost"}:
            if suffix and host.endswith("." + suffix):
                return host[: -len(suffix) - 1]
        return None

    async def dispatch(self, request: Request, path: str) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        raw = raw_path.decode("latin-1")
        raw_query = request.scope.get("query_string", b"").decode("latin-1")
        identity = await self._authenticate(request, raw, raw_query)
        bucket = self._virtual_bucket(request)
        rest = path.lstrip("/")
        if bucket is None:
            bucket, _, key = rest.partition("/")
        else:
            key = rest
        bucket = bucket or None
        key = key or None
        if request.method == "POST" and key is None and "multipart/form-data" in \
                request.headers.get("content-type", ""):
            # POST Object (browser form upload, signed by a policy document in the form).
            raise support.NotImplementedS3("POST Object (browser form upload) is not "
                                           "implemented.")
        if bucket is not None:
            # the signature is checked already; now refuse what no handler implements
            support.check_implemented("bucket" if key is None else "object", request.method,
                                      request.query_params)
            support.check_version_id(request.query_params)
            support.check_encryption("bucket" if key is None else "object", request.method,
                                     request.query_params, request.headers)
            support.check_content_md5(request.headers)
        if identity is None:
            return await self.anonymous(request, bucket, key)
        ctx = await self._context_for(identity)
        account = swift_auth.RESELLER_PREFIX + identity.project_id
        req = S3Request(request, ctx, self.service, account, identity.project_id, bucket,
                        key, identity)
        if bucket is None:
            if request.method != "GET" or support.subresources_of(request.query_params):
                # IAM and STS (POST / with Action=...) and anything else at the root
                raise support.NotImplementedS3(
                    f"{request.method} / is not implemented (IAM and STS are not offered; "
                    "use Keystone).")
            return await list_buckets(req)
        if not BUCKET_RE.match(bucket) or ".." in bucket:
            if request.method == "PUT" and key is None:
                raise BadRequest("The specified bucket is not valid.", kind="InvalidBucketName")
            raise NoSuchBucket("The specified bucket does not exist")
        if key is None:
            return await bucket_handle(req)
        return await objects.handle(req)

    def _context(self, identity: sigv4.Identity) -> RequestContext:
        roles: set[str] = set(identity.roles)  # from identity's ec2_credential()
        if not roles and "identity" in self.cloud.services:
            try:
                from pocketstack.services.identity.assignments import effective_roles
                from pocketstack.services.identity.models import Project

                with self.cloud.db.read() as s:
                    project = s.get(Project, identity.project_id)
                    if project is not None:
                        roles = {r.name for r in effective_roles(
                            s, identity.user_id, "project", project.id, project)}
            except Exception:  # noqa: BLE001 - identity internals moved: deny, loudly
                log.exception("S3: cannot read the roles of user %s", identity.user_id)
                roles = set()
        if not roles:
            raise sigv4.AccessDenied("The credential's user has no role on its project.")
        return RequestContext(user_id=identity.user_id, project_id=identity.project_id,
                              roles=frozenset(roles))

    async def anonymous(self, request: Request, bucket: str | None, key: str | None
                        ) -> Response:
        """Public-read buckets (x-amz-acl public-read -> X-Container-Read .r:*)."""
        if bucket is None or request.method not in ("GET", "HEAD") or \
                support.subresources_of(request.query_params):
            raise sigv4.AccessDenied("Access Denied")
        crec = await run(self.service.store.find_public_container, bucket)
        if crec is None:
            raise sigv4.AccessDenied("Access Denied")
        ctx = RequestContext()
        if not swift_auth.acl_allows(ctx, crec.meta.get("X-Container-Read"), listing=key is None):
            raise sigv4.AccessDenied("Access Denied")
        req = S3Request(request, ctx, self.service, crec.account,
                        swift_auth.project_of(crec.account) or "", bucket, key, None)
        if key is None:
            return await list_objects(req)
        return await objects.get(req)


# -- buckets ----------------------------------------------------------------------------
async def list_buckets(req: S3Request) -> Response:
    """ListBuckets, with max-buckets / continuation-token paging and prefix."""
    q = req.query
    raw = q.get("max-buckets", "10000")
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise BadRequest("Argument max-buckets must be an integer between 1 and 10000.",
                         kind="InvalidArgument")
    limit, prefix, marker = int(raw), q.get("prefix", ""), ""
    if q.get("continuation-token"):
        try:
            marker = base64.urlsafe_b64decode(q["continuation-token"].encode()).decode()
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The continuation token provided is incorrect",
                             kind="InvalidArgument") from None
    containers = await run(lambda: req.store.list_containers(
        req.account, prefix=prefix, marker=marker, limit=limit + 1))
    token = None
    if len(containers) > limit:
        containers = containers[:limit]
        token = base64.urlsafe_b64encode(containers[-1].name.encode()).decode()
    return views.list_buckets(req.project_id, containers, token,
                              prefix if "prefix" in q else None)


def _owner_or_deny(req: S3Request) -> None:
    if not swift_auth.is_owner(req.ctx, req.account):
        raise sigv4.AccessDenied("Access Denied")


async def _container(req: S3Request) -> Any:
    crec = await run(req.store.find_container, req.account, req.bucket)
    if crec is None:
        raise NoSuchBucket("The specified bucket does not exist")
    return crec


async def bucket_handle(req: S3Request) -> Response:
    method, q, store = req.method, req.query, req.store
    _owner_or_deny(req)
    if method == "PUT":
        if "acl" in q:
            await _container(req)
            read = acl.bucket_read_acl(req.headers)
            body = await req.body(64 * 1024)
            if read is None:  # the ACL is the body's <AccessControlPolicy> (or private)
                read = acl.read_acl_from_policy(body, req.project_id) if body.strip() else ""
            await run(store.update_container_meta, req.account, req.bucket,
                      {"X-Container-Read": read})
            return Response(status_code=200)
        if subresources.is_bucket_change(q):
            await _container(req)
            return await subresources.bucket_change(req)
        check_container(req.bucket)
        if not CREATE_BUCKET_RE.match(req.bucket) or ".." in req.bucket:
            raise BadRequest("The specified bucket is not valid.", kind="InvalidBucketName")
        await req.body()
        if await run(store.find_container, req.account, req.bucket) is not None:
            raise Conflict("Your previous request to create the named bucket succeeded and "
                           "you already own it.", kind="BucketAlreadyOwnedByYou")
        changes: dict[str, str | None] = {}
        read = acl.bucket_read_acl(req.headers)
        if read:
            changes["X-Container-Read"] = read
        await run(store.put_container, req.account, req.bucket, changes)
        return Response(status_code=200, headers={"Location": f"/{req.bucket}"})
    if method == "HEAD":
        await _container(req)
        return Response(status_code=200, headers={"x-amz-bucket-region": "us-east-1"})
    if method == "DELETE":
        await _container(req)
        if subresources.is_bucket_change(q):
            return await subresources.bucket_change(req)
        try:
            await run(store.delete_container, req.account, req.bucket)
        except Conflict:
            raise Conflict("The bucket you tried to delete is not empty",
                           kind="BucketNotEmpty") from None
        return Response(status_code=204)
    if method == "POST" and "delete" in q:
        await _container(req)
        return await objects.delete_objects(req)
    if method == "GET":
        crec = await _container(req)
        if "location" in q:
            return views.xml(f'<LocationConstraint xmlns="{views.NS}"/>')
        if "acl" in q:
            return acl.document(req.project_id, crec.meta.get("X-Container-Read"))
        if "versioning" in q:
            return views.xml(f'<VersioningConfiguration xmlns="{views.NS}"/>')
        if "uploads" in q:
            return await multipart.list_uploads(req)
        if "versions" in q:
            return await list_objects(req, versions=True)
        config = subresources.bucket_config(req, crec)
        if config is not None:
            return config
        return await list_objects(req)
    raise PocketError("The specified method is not allowed against this resource.",
                      status=405, kind="MethodNotAllowed")


async def list_objects(req: S3Request, versions: bool = False) -> Response:
    """ListObjects (V1, V2) and ListObjectVersions. Buckets are not versioned here, so each
    key has one version, "null", the latest (key-marker then works as V1's marker)."""
    q = req.query
    v2 = q.get("list-type") == "2" and not versions
    try:
        max_keys = int(q.get("max-keys", "1000"))
    except ValueError:
        raise BadRequest("Provided max-keys not an integer or within integer range",
                         kind="InvalidArgument") from None
    max_keys = max(0, min(max_keys, 1000))
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    url = q.get("encoding-type") == "url"
    if v2:
        token = q.get("continuation-token")
        if token is not None:
            try:
                marker = base64.urlsafe_b64decode(token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("The continuation token provided is incorrect",
                                 kind="InvalidArgument") from None
        else:
            marker = q.get("start-after", "")
    elif versions:
        marker = q.get("key-marker", "")
        if q.get("version-id-marker") and not marker:
            raise BadRequest("A version-id marker cannot be specified without a key marker.",
                             kind="InvalidArgument")
    else:
        marker = q.get("marker", "")
    items = []
    if max_keys:
        items = await run(lambda: req.store.list_objects(
            req.account, req.bucket, prefix=prefix, delimiter=delimiter[:1] if delimiter else "",
            marker=marker, limit=max_keys + 1))
    truncated = len(items) > max_keys
    items = items[:max_keys]
    last = items[-1] if items else None
    last_name = (last if isinstance(last, str) else last.name) if last is not None else ""
    fetch_owner = not v2 or q.get("fetch-owner") == "true"
    root = "ListVersionsResult" if versions else "ListBucketResult"
    body = [f'<{root} xmlns="{views.NS}"><Name>{escape(req.bucket)}</Name>'
            f"<Prefix>{views.enc(prefix, url)}</Prefix>"]
    if versions:
        body.append(f"<KeyMarker>{views.enc(marker, url)}</KeyMarker>"
                    f"<VersionIdMarker>{escape(q.get('version-id-marker', ''))}"
                    "</VersionIdMarker>")
        if truncated:
            body.append(f"<NextKeyMarker>{views.enc(last_name, url)}</NextKeyMarker>"
                        "<NextVersionIdMarker>null</NextVersionIdMarker>")
    elif v2:
        body.append(f"<KeyCount>{len(items)}</KeyCount>")
        if q.get("continuation-token") is not None:
            body.append(f"<ContinuationToken>{escape(q['continuation-token'])}"
                        "</ContinuationToken>")
        if q.get("start-after"):
            body.append(f"<StartAfter>{views.enc(q['start-after'], url)}</StartAfter>")
        if truncated:
            token = base64.urlsafe_b64encode(last_name.encode()).decode()
            body.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    else:
        body.append(f"<Marker>{views.enc(marker, url)}</Marker>")
        if truncated and delimiter:
            body.append(f"<NextMarker>{views.enc(last_name, url)}</NextMarker>")
    body.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        body.append(f"<Delimiter>{views.enc(delimiter, url)}</Delimiter>")
    if url:
        body.append("<EncodingType>url</EncodingType>")
    body.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    for item in items:
        if isinstance(item, str):
            body.append(f"<CommonPrefixes><Prefix>{views.enc(item, url)}</Prefix>"
                        "</CommonPrefixes>")
        elif versions:
            body.append(views.version(item, req.project_id, url))
        else:
            body.append(views.contents(item, req.project_id if fetch_owner else None, url))
    body.append(f"</{root}>")
    return views.xml("".join(body))

