"""Bucket and object configuration subresources (``?tagging``, ``?cors``, ``?policy``...).

Tagging is real: a bucket's tags live in its container's system metadata, an object's in
its object's (``X-*-Sysmeta-S3-Tagging``, never shown through Swift and never settable
by Swift clients: their metadata parsers take only ``X-*-Meta-*`` and listed headers).

The other configurations are not implemented. Reading one answers what S3 answers for a
bucket that has none (mostly a 404 with its own code, e.g. NoSuchBucketPolicy), because
that is the truth here; tools that read a bucket's whole state (Ansible's s3_bucket,
Terraform) rely on those codes. Setting one is a 501 NotImplemented; deleting one
succeeds, there being nothing to delete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import orjson
from starlette.responses import Response

from pocketstack.api.http import run
from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.s3 import views

if TYPE_CHECKING:
    from pocketstack.services.s3.routes import S3Request

BUCKET_TAGS = "X-Container-Sysmeta-S3-Tagging"
OBJECT_TAGS = "X-Object-Sysmeta-S3-Tagging"
MAX_BUCKET_TAGS, MAX_OBJECT_TAGS = 50, 10

# Bucket configurations we do not implement: GET answers "none configured" as S3 does.
# subresource -> (status, error code or None, message or the empty document's root)
NOT_CONFIGURED: dict[str, tuple[int, str | None, str]] = {
    "cors": (404, "NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    "policy": (404, "NoSuchBucketPolicy", "The bucket policy does not exist"),
    "lifecycle": (404, "NoSuchLifecycleConfiguration",
                  "The lifecycle configuration does not exist"),
    "encryption": (404, "ServerSideEncryptionConfigurationNotFoundError",
                   "The server side encryption configuration was not found"),
    "website": (404, "NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration"),
    "replication": (404, "ReplicationConfigurationNotFoundError",
                    "The replication configuration was not found"),
    "ownershipControls": (404, "OwnershipControlsNotFoundError",
                          "The bucket ownership controls were not found"),
    "publicAccessBlock": (404, "NoSuchPublicAccessBlockConfiguration",
                          "The public access block configuration was not found"),
    "object-lock": (404, "ObjectLockConfigurationNotFoundError",
                    "Object Lock configuration does not exist for this bucket"),
    "logging": (200, None, "BucketLoggingStatus"),
    "notification": (200, None, "NotificationConfiguration"),
    "accelerate": (200, None, "AccelerateConfiguration"),
}
# Settable only in S3 proper; PUT answers 501 (versioning: GET is in routes.py).
NOT_IMPLEMENTED = set(NOT_CONFIGURED) | {"versioning", "requestPayment"}


class InvalidTag(PocketError):
    status = 400
    kind = "InvalidTag"


def bucket_config(req: "S3Request", crec: Any) -> Response | None:
    """GET /<bucket>?<subresource> for the subresources above; None for anything else."""
    q = req.query
    if "tagging" in q:
        tags = _load(crec.meta.get(BUCKET_TAGS))
        if not tags:
            raise PocketError("The TagSet does not exist", status=404, kind="NoSuchTagSet")
        return tagging_document(tags)
    if "requestPayment" in q:
        return views.xml(f'<RequestPaymentConfiguration xmlns="{views.NS}"><Payer>'
                         "BucketOwner</Payer></RequestPaymentConfiguration>")
    for name, (status, code, text) in NOT_CONFIGURED.items():
        if name in q:
            if code is not None:
                raise PocketError(text, status=status, kind=code)
            return views.xml(f'<{text} xmlns="{views.NS}"/>')
    return None


def is_bucket_change(query: Any) -> bool:
    return "tagging" in query or any(name in query for name in NOT_IMPLEMENTED)


async def bucket_change(req: "S3Request") -> Response:
    """PUT/DELETE /<bucket>?<subresource> when ``is_bucket_change`` (the bucket exists)."""
    q = req.query
    if "tagging" in q:
        if req.method == "PUT":
            tags = parse_tagging(await req.body(64 * 1024), MAX_BUCKET_TAGS, "Bucket")
            value: str | None = orjson.dumps(tags).decode()
        else:
            value = None
        await run(req.store.update_container_meta, req.account, req.bucket,
                  {BUCKET_TAGS: value})
        return Response(status_code=204)
    for name in NOT_IMPLEMENTED:
        if name in q:
            if req.method == "DELETE":
                return Response(status_code=204)  # none is configured: nothing to delete
            raise PocketError(f"Setting a bucket's {name} is not implemented.", status=501,
                              kind="NotImplemented")
    raise AssertionError("bucket_change without a subresource it knows")


def tagging_document(tags: list[list[str]]) -> Response:
    items = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>"
                    for k, v in tags)
    return views.xml(f'<Tagging xmlns="{views.NS}"><TagSet>{items}</TagSet></Tagging>')


def parse_tagging(body: bytes, limit: int, what: str) -> list[list[str]]:
    """A <Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging> document."""
    root = views.xml_root(body)
    tag_set = root.find("TagSet")
    if root.tag != "Tagging" or tag_set is None:
        raise BadRequest("The XML you provided was not well-formed or did not validate "
                         "against our published schema.", kind="MalformedXML")
    tags = []
    for tag in tag_set.findall("Tag"):
        key, value = tag.findtext("Key"), tag.findtext("Value")
        if key is None or value is None:
            raise BadRequest("The XML you provided was not well-formed or did not validate "
                             "against our published schema.", kind="MalformedXML")
        tags.append([key, value])
    return check_tags(tags, limit, what)


def parse_tagging_header(value: str) -> list[list[str]]:
    """x-amz-tagging on PUT/copy: URL query form, ``k1=v1&k2=v2``."""
    return check_tags([[k, v] for k, v in parse_qsl(value, keep_blank_values=True)],
                      MAX_OBJECT_TAGS, "Object")


def check_tags(tags: list[list[str]], limit: int, what: str) -> list[list[str]]:
    if len(tags) > limit:
        raise InvalidTag(f"{what} tags cannot be more than {limit}")
    seen = set()
    for key, value in tags:
        if not 1 <= len(key) <= 128:
            raise InvalidTag("The TagKey you have provided is invalid")
        if len(value) > 256:
            raise InvalidTag("The TagValue you have provided is invalid")
        if key.lower().startswith("aws:"):
            raise InvalidTag("System tags cannot be added/updated by requester")
        if key in seen:
            raise InvalidTag("Cannot provide multiple Tags with the same key")
        seen.add(key)
    return tags


def object_tags(meta: dict[str, Any]) -> list[list[str]]:
    return _load(meta.get(OBJECT_TAGS))


def _load(value: str | None) -> list[list[str]]:
    return orjson.loads(value) if value else []


async def object_tagging(req: "S3Request", record: Any) -> Response:
    """GET/PUT/DELETE /<bucket>/<key>?tagging (the object exists)."""
    if req.method == "GET":
        return tagging_document(object_tags(record.meta))
    value = None
    if req.method == "PUT":
        value = orjson.dumps(parse_tagging(await req.body(64 * 1024), MAX_OBJECT_TAGS,
                                           "Object")).decode()
    await run(req.store.set_system_meta, req.account, req.bucket, req.key, OBJECT_TAGS, value)
    return Response(status_code=200 if req.method == "PUT" else 204)
