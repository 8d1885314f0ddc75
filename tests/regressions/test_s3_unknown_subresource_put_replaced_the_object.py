"""Regression: ``PUT /bucket/key?retention`` (and ?legal-hold) fell through to PutObject and
the object's bytes became the retention XML; ``GET ?attributes`` returned the object. Every
S3 subresource no handler implements is now refused (501) before any handler runs; the
functional read-back is tests/functional/s3/test_s3_refusals.py."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from pocketstack.services.s3 import support


@pytest.mark.parametrize("method,query", [
    ("PUT", "retention"), ("PUT", "legal-hold"), ("GET", "retention"),
    ("GET", "legal-hold"), ("GET", "torrent"), ("POST", "restore"),
    ("POST", "select&select-type=2"), ("DELETE", "versions"), ("PUT", "uploadId=x"),
])
def test_unimplemented_object_subresources_are_refused(method, query):
    with pytest.raises(support.NotImplementedS3):
        support.check_implemented("object", method, QueryParams(query))


@pytest.mark.parametrize("method,query", [
    ("PUT", ""), ("PUT", "tagging"), ("PUT", "partNumber=1&uploadId=x"), ("GET", ""),
    ("GET", "response-content-type=text/plain&x-id=GetObject"), ("DELETE", "uploadId=x"),
    ("POST", "uploads"),
])
def test_implemented_object_operations_pass(method, query):
    support.check_implemented("object", method, QueryParams(query))
