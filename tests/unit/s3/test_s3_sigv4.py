"""Signatures made by botocore's own signers (SigV4 header/query, V2 header/query) must
verify; a changed byte, a wrong secret or an expired URL must not."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.datastructures import Headers

from pocketstack.errors import PocketError
from pocketstack.services.s3 import sigv4

CREDS = Credentials("AKIDPOCKET", "s3cr3t/key+value")


def lookup(access: str):
    if access == "AKIDPOCKET":
        return {"user_id": "u1", "project_id": "p1", "secret": CREDS.secret_key}
    return None


def verify(req: AWSRequest, method: str | None = None, mount: str = "/s3"):
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    headers = Headers(raw=[(k.lower().encode(), (v if isinstance(v, bytes) else v.encode()))
                           for k, v in prepared.headers.items()]
                      + [(b"host", parts.netloc.encode())])
    return sigv4.authenticate(method or prepared.method, parts.path, parts.query, headers,
                              lookup, mount)


def _request(method="PUT", url="http://127.0.0.1:8830/s3/bkt/dir/a%20b.txt?partNumber=1&uploadId=x",
             body=b"hello"):
    req = AWSRequest(method=method, url=url, data=body)
    req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    return req


def test_sigv4_header():
    req = _request()
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    ident = verify(req)
    assert (ident.user_id, ident.project_id) == ("u1", "p1")
    assert ident.payload_sha256 == hashlib.sha256(b"hello").hexdigest()


def test_sigv4_header_tampered_method_fails():
    req = _request()
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    with pytest.raises(PocketError) as err:
        verify(req, method="DELETE")
    assert err.value.kind == "SignatureDoesNotMatch"


def test_sigv4_wrong_secret_and_unknown_key():
    req = _request()
    S3SigV4Auth(Credentials("AKIDPOCKET", "nope"), "s3", "us-east-1").add_auth(req)
    with pytest.raises(PocketError):
        verify(req)
    req = _request()
    S3SigV4Auth(Credentials("OTHER", "x"), "s3", "us-east-1").add_auth(req)
    with pytest.raises(PocketError) as err:
        verify(req)
    assert err.value.kind == "InvalidAccessKeyId"


def test_sigv4_presigned_query():
    req = AWSRequest(method="GET", url="http://127.0.0.1:8830/s3/bkt/k%2By", data=b"")
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=60).add_auth(req)
    assert verify(req).project_id == "p1"


def test_v2_header_and_query():
    req = AWSRequest(method="GET", url="http://127.0.0.1:8830/s3/bkt/key?acl", data=b"")
    HmacV1Auth(CREDS).add_auth(req)
    assert verify(req).user_id == "u1"
    req = AWSRequest(method="GET", url="http://127.0.0.1:8830/s3/bkt/key", data=b"")
    HmacV1QueryAuth(CREDS, expires=60).add_auth(req)
    assert verify(req).user_id == "u1"


def test_v2_query_expired():
    req = AWSRequest(method="GET", url="http://127.0.0.1:8830/s3/bkt/key", data=b"")
    HmacV1QueryAuth(CREDS, expires=-10).add_auth(req)
    with pytest.raises(PocketError):
        verify(req)


def test_anonymous_is_none():
    assert sigv4.authenticate("GET", "/s3/b", "", Headers({}), lookup) is None
