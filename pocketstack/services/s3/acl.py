"""S3 ACLs as far as they map onto Swift's container read ACL, and no further.

A bucket's S3 ACL is its container's ``X-Container-Read``: ``public-read`` is ``.r:*`` with
listings (anonymous S3 and Swift reads), ``authenticated-read`` is ``*:*`` (any
authenticated user, through Swift; S3 bucket names are per project). GET ?acl renders the
grants that X-Container-Read really gives, so what a client reads back is what is
enforced. Anything that cannot be enforced here (public write, log delivery, grants to
other users, object ACLs other than the owner's) is refused with 501, never accepted and
ignored.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import Response

from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.s3 import views
from pocketstack.services.s3.support import NotImplementedS3, has_prefix

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
OWNER_ONLY = ("private", "bucket-owner-read", "bucket-owner-full-control")
CANNED_BUCKET = {**{name: "" for name in OWNER_ONLY},
                 "public-read": ".r:*,.rlistings", "authenticated-read": "*:*"}
KNOWN = set(CANNED_BUCKET) | {"public-read-write", "aws-exec-read", "log-delivery-write"}
GRANT_HEADERS = ("x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp",
                 "x-amz-grant-write-acp", "x-amz-grant-full-control")


def _not_implemented(what: str) -> PocketError:
    return NotImplementedS3(f"{what} is not implemented.")


def _canned(value: str) -> str:
    if value not in KNOWN:
        raise BadRequest(f"Invalid canned ACL {value}", kind="InvalidArgument")
    return value


def _no_grant_headers(headers: Any) -> None:
    granted = [h for h in GRANT_HEADERS if h in headers]
    if granted:
        raise _not_implemented("ACL grants (" + ", ".join(granted) + ")")


def bucket_read_acl(headers: Any) -> str | None:
    """x-amz-acl on CreateBucket/PutBucketAcl -> X-Container-Read ('' removes); None when
    the request sets no ACL."""
    _no_grant_headers(headers)
    value = headers.get("x-amz-acl")
    if value is None:
        return None
    if _canned(value) not in CANNED_BUCKET:
        raise _not_implemented(f"The canned ACL {value}")
    return CANNED_BUCKET[value]


def check_object_acl(headers: Any, bucket_read: str | None = None) -> None:
    """An object's reads follow its bucket's ACL: a canned object ACL is accepted when it
    is what the bucket already gives (the owner's; public-read in a public-read bucket;
    authenticated-read in an authenticated-read one). ``bucket_read``: the bucket's
    X-Container-Read."""
    if not has_prefix(headers, b"x-amz-acl", b"x-amz-grant-"):
        return
    _no_grant_headers(headers)
    value = headers.get("x-amz-acl")
    if value is None or _canned(value) in OWNER_ONLY:
        return
    given = [i.strip() for i in (bucket_read or "").split(",")]
    if value == "public-read" and ".r:*" in given or \
            value == "authenticated-read" and "*:*" in given:
        return
    raise _not_implemented(f"The object ACL {value} (objects follow their bucket's ACL: "
                           "set it on the bucket)")


def read_acl_from_policy(body: bytes, owner: str) -> str:
    """An <AccessControlPolicy> body (PutBucketAcl without x-amz-acl) -> X-Container-Read."""
    root = views.xml_root(body)
    acl = root.find("AccessControlList")
    if root.tag != "AccessControlPolicy" or acl is None:
        raise BadRequest("The XML you provided was not well-formed or did not validate "
                         "against our published schema.", kind="MalformedACLError")
    read = []
    for grant in acl.findall("Grant"):
        grantee, perm = grant.find("Grantee"), grant.findtext("Permission")
        if grantee is None:
            raise BadRequest("The XML you provided was not well-formed or did not validate "
                             "against our published schema.", kind="MalformedACLError")
        uri, ident = grantee.findtext("URI"), grantee.findtext("ID")
        if ident == owner and perm == "FULL_CONTROL":
            continue
        if uri == ALL_USERS and perm == "READ":
            read.append(".r:*,.rlistings")
        elif uri == AUTHENTICATED_USERS and perm == "READ":
            read.append("*:*")
        else:
            raise _not_implemented(f"The grant of {perm} to {uri or ident}")
    return ",".join(read)


def document(owner: str, read_acl: str | None) -> Response:
    """GET ?acl: the owner's FULL_CONTROL and the READ grants X-Container-Read gives."""
    items = [item.strip() for item in (read_acl or "").split(",")]
    grants = [_grant(f"<ID>{escape(owner)}</ID><DisplayName>{escape(owner)}</DisplayName>",
                     "CanonicalUser", "FULL_CONTROL")]
    if ".r:*" in items:
        grants.append(_grant(f"<URI>{ALL_USERS}</URI>", "Group", "READ"))
    if "*:*" in items:
        grants.append(_grant(f"<URI>{AUTHENTICATED_USERS}</URI>", "Group", "READ"))
    return views.xml(f'<AccessControlPolicy xmlns="{views.NS}">{views.owner(owner)}'
                     f"<AccessControlList>{''.join(grants)}</AccessControlList>"
                     "</AccessControlPolicy>")


def _grant(who: str, kind: str, permission: str) -> str:
    return ('<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="{kind}">{who}</Grantee><Permission>{permission}</Permission></Grant>')
