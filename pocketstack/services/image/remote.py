"""glance-download import: fill an image from an image of a Glance in another (or the
same) region, found through Keystone's catalog, read with the requesting user's token.

As in Glance: the source must be active; its disk/container formats and the properties
whose names start with ``[image] glance_download_properties`` come along; its URLs pass
the same filtering as web-download; the data is streamed into staging (hashing, quota,
format checks) and then imported into the target stores like any staged data. Nothing
changes on the target image unless the whole import succeeds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

from pocketstack.errors import BadRequest

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService


def check_request(method: dict[str, Any]) -> None:
    """The synchronous checks of POST /import (400s), Glance's messages."""
    if "glance_region" not in method:
        raise BadRequest("'glance_region' needs to be set for glance-download import method")
    if "glance_image_id" not in method:
        raise BadRequest("'glance_image_id' needs to be set for glance-download import "
                         "method")
    try:
        uuid.UUID(str(method["glance_image_id"]))
    except ValueError:
        raise BadRequest(f"Remote image id does not look like a UUID: "
                         f"{method['glance_image_id']}") from None
    method.setdefault("glance_service_interface", "public")


def endpoint(svc: "ImageService", project_id: str | None, region: str,
             interface: str) -> str:
    """The image endpoint of ``region``/``interface`` in the catalog (identity slice's
    ``catalog(project_id)``), without a trailing slash."""
    identity = svc.cloud.services.get("identity") if hasattr(svc.cloud, "services") else None
    if identity is None or not hasattr(identity, "catalog"):
        raise BadRequest("glance-download needs the identity service's catalog.")
    for entry in identity.catalog(project_id):
        if entry.get("type") != "image":
            continue
        for ep in entry.get("endpoints", []):
            if ep.get("interface") == interface and region in (ep.get("region_id"),
                                                                ep.get("region")):
                return str(ep["url"]).rstrip("/")
    raise BadRequest(f"No image service endpoint with interface {interface!r} in region "
                     f"{region!r}.")


def download(svc: "ImageService", image_id: str, method: dict[str, Any],
             token: str | None) -> dict[str, Any]:
    """Read the source image's record, stream its data into staging; return what to copy
    onto the target when the import succeeds."""
    from pocketstack.services.image.webfetch import FilteredRedirects, fetch, validate_uri
    from pocketstack.services.image.models import Image

    if not token:
        raise BadRequest("The requesting user's token is gone (the cloud restarted); "
                         "start the import again.")
    with svc.db.read() as s:
        row = s.get(Image, image_id)
        owner = row.owner if row is not None else None
    base = endpoint(svc, owner, str(method.get("glance_region")),
                    str(method.get("glance_service_interface") or "public"))
    remote_id = str(method.get("glance_image_id"))
    url = f"{base}/v2/images/{remote_id}"
    cfg = svc.settings.image
    if not validate_uri(cfg, url):
        raise BadRequest(f"Processed URI for glance-download does not pass filtering: {url}")
    opener = urllib.request.build_opener(FilteredRedirects(cfg))
    try:
        with opener.open(urllib.request.Request(url, headers={"X-Auth-Token": token}),
                         timeout=cfg.web_download_timeout) as resp:
            source = json.loads(resp.read(1 << 20) or b"{}")
    except urllib.error.HTTPError as exc:
        raise BadRequest(f"Source image {remote_id} could not be read from {base}: HTTP "
                         f"{exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BadRequest(f"Source image {remote_id} could not be read from {base}: "
                         f"{getattr(exc, 'reason', exc)}") from None
    if source.get("status") != "active":
        raise BadRequest(f"Source image status should be active instead of "
                         f"{source.get('status')}")
    try:
        size = int(source["size"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest(f"Size attribute of remote image {remote_id} could not be "
                         "determined.") from None
    prefixes = [p.strip() for p in cfg.glance_download_properties.split(",") if p.strip()]
    props = {k: v for k, v in source.items()
             if isinstance(v, str) and any(k.startswith(p) for p in prefixes)}
    fetch(svc, image_id, f"{url}/file", headers={"X-Auth-Token": token}, expect_size=size,
          what="glance-download")
    return {"disk_format": source.get("disk_format"),
            "container_format": source.get("container_format"), "properties": props}
