"""S3 XML documents (the 2006-03-01 API)."""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.responses import Response

from pocketstack.errors import BadRequest

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def last_modified(ts: float) -> str:
    """An object's LastModified in listings: whole seconds rounded up, as its Last-Modified
    header (Swift's rule, names.http_date), so a listing and a HEAD agree."""
    return iso(math.ceil(ts))


def xml(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response((HEAD + body).encode(), status_code=status, headers=headers,
                    media_type="application/xml")


def owner(project_id: str) -> str:
    return f"<Owner><ID>{escape(project_id)}</ID><DisplayName>{escape(project_id)}" \
           "</DisplayName></Owner>"


def enc(value: str, url: bool) -> str:
    return escape(quote(value, safe="/") if url else value)


def list_buckets(project_id: str, containers: list[Any], token: str | None = None,
                 prefix: str | None = None) -> Response:
    items = "".join(f"<Bucket><Name>{escape(c.name)}</Name><CreationDate>{iso(c.created)}"
                    "</CreationDate></Bucket>" for c in containers)
    more = f"<ContinuationToken>{token}</ContinuationToken>" if token else ""
    if prefix is not None:
        more += f"<Prefix>{escape(prefix)}</Prefix>"
    return xml(f'<ListAllMyBucketsResult xmlns="{NS}">{owner(project_id)}<Buckets>{items}'
               f"</Buckets>{more}</ListAllMyBucketsResult>")


def contents(o: Any, project_id: str | None, url: bool) -> str:
    etag = o.etag if o.etag.startswith('"') else f'"{o.etag}"'
    own = owner(project_id) if project_id else ""
    return (f"<Contents><Key>{enc(o.name, url)}</Key><LastModified>{last_modified(o.timestamp)}"
            f"</LastModified><ETag>{escape(etag)}</ETag><Size>{o.size}</Size>{own}"
            "<StorageClass>STANDARD</StorageClass></Contents>")


def version(o: Any, project_id: str, url: bool) -> str:
    """One <Version> of ListObjectVersions: an unversioned bucket's objects are all the
    latest, and only, version "null"."""
    etag = o.etag if o.etag.startswith('"') else f'"{o.etag}"'
    return (f"<Version><Key>{enc(o.name, url)}</Key><VersionId>null</VersionId>"
            f"<IsLatest>true</IsLatest><LastModified>{last_modified(o.timestamp)}</LastModified>"
            f"<ETag>{escape(etag)}</ETag><Size>{o.size}</Size>"
            f"<StorageClass>STANDARD</StorageClass>{owner(project_id)}</Version>")


def xml_root(data: bytes) -> ET.Element:
    """A request's XML document with namespaces stripped from tags; MalformedXML if it
    does not parse."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise BadRequest("The XML you provided was not well-formed or did not validate "
                         "against our published schema.", kind="MalformedXML") from None
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root
