"""GetObjectAttributes (``GET ?attributes``) and GetObject/HeadObject by ``partNumber``.

A multipart object keeps its parts' sizes in its system metadata
(``X-Object-Sysmeta-S3-Parts``, comma-separated, written at completion), so a part is a
byte range of the assembled object. An object uploaded in one piece is its own part 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.object_store.names import http_date
from pocketstack.services.s3 import checksums, sse, views

if TYPE_CHECKING:
    from pocketstack.services.object_store.store import ObjectRecord
    from pocketstack.services.s3.routes import S3Request

PARTS = "X-Object-Sysmeta-S3-Parts"
ATTRIBUTES = {"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"}


def part_sizes(meta: dict[str, Any]) -> list[int] | None:
    """The sizes of a multipart object's parts; None for an object made in one piece."""
    value = meta.get(PARTS)
    return [int(n) for n in value.split(",")] if value else None


def part_range(record: "ObjectRecord", raw: str, has_range: bool
               ) -> tuple[int, int, dict[str, str]]:
    """GET/HEAD ?partNumber=N: (start, end, headers) of that part."""
    if has_range:
        raise BadRequest("Cannot specify both Range header and partNumber query parameter",
                         kind="InvalidRequest")
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise BadRequest("Part number must be an integer between 1 and 10000, inclusive",
                         kind="InvalidArgument")
    number = int(raw)
    sizes = part_sizes(record.meta) or [record.size]
    if number > len(sizes):
        raise PocketError("The requested partnumber is not satisfiable", status=416,
                          kind="InvalidPartNumber")
    start = sum(sizes[:number - 1])
    end = start + sizes[number - 1]
    headers = {"x-amz-mp-parts-count": str(len(sizes))} if part_sizes(record.meta) else {}
    if record.size:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{record.size}"
    headers["Content-Length"] = str(end - start)
    return start, end, headers


def get_object_attributes(req: "S3Request", record: "ObjectRecord") -> Response:
    wanted = {a.strip() for a in (req.headers.get("x-amz-object-attributes") or "").split(",")
              if a.strip()}
    if not wanted:
        raise BadRequest("Minimum of one object attribute must be specified",
                         kind="InvalidArgument")
    if wanted - ATTRIBUTES:
        raise BadRequest("Invalid attribute name specified.", kind="InvalidArgument")
    params = sse.params_of(record.meta)
    headers = {"Last-Modified": http_date(record.timestamp)}
    if params is not None:
        headers.update(sse.unlock(params, req.headers,
                                  req.service.cloud.settings.data_dir).headers())
    body = [f'<GetObjectAttributesResponse xmlns="{views.NS}">']
    if "ETag" in wanted:
        body.append(f"<ETag>{record.etag.strip(chr(34))}</ETag>")
    stored = record.meta.get(checksums.STORED)
    if "Checksum" in wanted and stored:
        algorithm, _, value = stored.partition(":")
        tag = "Checksum" + algorithm.upper()
        body.append(f"<Checksum><{tag}>{value}</{tag}><ChecksumType>FULL_OBJECT"
                    "</ChecksumType></Checksum>")
    sizes = part_sizes(record.meta)
    if "ObjectParts" in wanted and sizes:
        try:
            marker = int(req.headers.get("x-amz-part-number-marker") or 0)
            most = min(int(req.headers.get("x-amz-max-parts") or 1000), 1000)
        except ValueError:
            raise BadRequest("Invalid part-number-marker or max-parts",
                             kind="InvalidArgument") from None
        numbers = list(range(marker + 1, len(sizes) + 1))[:most]
        truncated = bool(numbers) and numbers[-1] < len(sizes)
        body.append(f"<ObjectParts><PartsCount>{len(sizes)}</PartsCount>"
                    f"<PartNumberMarker>{marker}</PartNumberMarker>"
                    f"<NextPartNumberMarker>{numbers[-1] if numbers else marker}"
                    f"</NextPartNumberMarker><MaxParts>{most}</MaxParts>"
                    f"<IsTruncated>{str(truncated).lower()}</IsTruncated>")
        body.extend(f"<Part><PartNumber>{n}</PartNumber><Size>{sizes[n - 1]}</Size></Part>"
                    for n in numbers)
        body.append("</ObjectParts>")
    if "StorageClass" in wanted:
        body.append("<StorageClass>STANDARD</StorageClass>")
    if "ObjectSize" in wanted:
        body.append(f"<ObjectSize>{record.size}</ObjectSize>")
    body.append("</GetObjectAttributesResponse>")
    return views.xml("".join(body), headers=headers)
