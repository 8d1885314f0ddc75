"""Image locations: data that stays at an http(s) URL, in the read-only HTTP store.

Two APIs, as in Glance:

- ``PATCH`` on ``/locations`` (only with ``[image] show_multiple_locations``): ``add``
  ``/locations/-`` (or an index) a ``{"url", "metadata", "validation_data"?}``; a queued
  image becomes active with the size the URL reports and no hashes unless validation_data
  gives them; on an active image validation_data must match what it has (409).
  ``replace /locations`` may only change metadata; ``remove /locations/N`` (admin) never
  the last one.
- ``POST /v2/images/{id}/locations`` (v2.17) on a queued image: a ``location_import``
  task that records the location and, with ``do_secure_hash``, reads the data to compute
  md5 and ``os_hash_value`` (the validation_data's algorithm, else sha512) and checks
  them against validation_data; a mismatch sends the image back to queued.

Every URL passes the web-download filtering first, and it is only ever read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, PocketError
from pocketstack.services.image import access
from pocketstack.services.image.models import Image, ImageTask
from pocketstack.services.image.imports import fail_task
from pocketstack.services.image.webfetch import validate_uri

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

log = logging.getLogger("pocketstack.image")

HEX = re.compile(r"^[0-9a-fA-F]+\Z")
DEFAULT_ALGO = "sha512"


def _http_store(svc: "ImageService", url: Any) -> Any:
    """The HTTP store for ``url``, after the URL checks (400s)."""
    if not isinstance(url, str) or not url:
        raise BadRequest("A location needs a 'url'.")
    store = svc.http_store()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if store is None or scheme not in store.schemes:
        raise BadRequest(f"Invalid location {url}: no store for scheme '{scheme}'"
                         + ("" if store is not None else " (no http store configured)"))
    if not validate_uri(svc.settings.image, url.split("#", 1)[0]):
        raise BadRequest(f"Location URI does not pass filtering: {url}")
    return store


def _check_hashes(data: Any) -> dict[str, str]:
    """The v2.17 API's validation_data: os_hash_algo and os_hash_value (400s)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("'validation_data' must be an object.")
    allowed = {"os_hash_algo", "os_hash_value"}
    extra = set(data) - allowed
    if extra:
        raise BadRequest(f"Unknown validation_data keys: {', '.join(sorted(extra))}")
    if not all(isinstance(v, str) for v in data.values()):
        raise BadRequest("validation_data values must be strings.")
    if "os_hash_value" in data and "os_hash_algo" not in data:
        raise BadRequest("validation_data os_hash_value needs os_hash_algo.")
    if "os_hash_algo" in data:
        algo = data["os_hash_algo"]
        try:
            digest = hashlib.new(algo)
        except (ValueError, TypeError):
            raise BadRequest(f"Unsupported hash algorithm {algo!r}.") from None
        if "os_hash_value" not in data:
            raise BadRequest("validation_data os_hash_algo needs os_hash_value.")
        value = data["os_hash_value"]
        if len(value) != digest.digest_size * 2 or not HEX.match(value):
            raise BadRequest(f"os_hash_value is not a {algo} digest "
                             f"({digest.digest_size * 2} hexadecimal characters).")
    return dict(data)


# -- PATCH /v2/images/{id} on /locations ----------------------------------------------------

def prepare(svc: "ImageService", changes: list[dict[str, Any]]) -> None:
    """Before the transaction: check the URLs being added and ask for their sizes (network
    I/O never happens while the database is held)."""
    for change in changes:
        if change["path"][0] != "locations":
            continue
        values = ([change.get("value")] if change["op"] == "add"
                  else change.get("value") if change["op"] == "replace" else [])
        if change["op"] == "replace" and not isinstance(values, list):
            raise BadRequest("Invalid locations: a list is needed.")
        sizes = []
        for value in values or []:
            if not isinstance(value, dict) or "url" not in value \
                    or not isinstance(value.get("metadata", {}), dict):
                raise BadRequest("Invalid location: an object with 'url' and 'metadata' "
                                 "is needed.")
            store = _http_store(svc, value["url"])
            vd = value.get("validation_data")
            if vd is not None and (not isinstance(vd, dict) or
                                   set(vd) - {"checksum", "os_hash_algo", "os_hash_value"}
                                   or not all(isinstance(v, str) for v in vd.values())):
                raise BadRequest("validation_data may hold checksum, os_hash_algo and "
                                 "os_hash_value (strings).")
            if change["op"] == "add":
                try:
                    sizes.append(store.size_of(value["url"]))
                except OSError as exc:
                    raise BadRequest(f"Location {value['url']} could not be read: "
                                     f"{exc}") from None
        change["sizes"] = sizes


def patch(svc: "ImageService", ctx: RequestContext, s: Any, row: Image,
          change: dict[str, Any]) -> list[tuple[str, str]]:
    """Apply one locations change to ``row`` inside the update's transaction; return the
    store copies to delete once it commits, as (store id, image id)."""
    op = change["op"]
    current = _all(svc, row)
    if op == "add":
        if row.status not in ("queued", "active"):
            raise Conflict(f"Locations can not be added to an image in status {row.status}.")
        value = change["value"]
        url = value["url"]
        if any(loc["url"] == url for loc in current):
            raise BadRequest(f"Location {url} is already set on this image.")
        hashes = _legacy_hashes(svc, row, value.get("validation_data") or {})
        index = change["path"][1]
        metadata = dict(value.get("metadata") or {})
        if len(svc.stores) > 1:
            metadata.setdefault("store", svc.http_store().store_id)
        http = list(row.http_locations or [])
        entry = {"url": url, "metadata": metadata}
        if index == "-":
            http.append(entry)
        else:
            try:
                pos = int(index)
            except ValueError:
                raise BadRequest(f"Invalid location index {index!r}.") from None
            if not 0 <= pos <= len(current):
                raise BadRequest(f"Invalid location index {index!r}.")
            http.insert(max(0, pos - (len(current) - len(http))), entry)
        row.http_locations = http
        if row.status == "queued":
            row.size = change["sizes"][0] if change.get("sizes") else None
            for key, given in hashes.items():
                setattr(row, key, given)
            row.status = "active"
        return []
    if op == "replace":
        new = change["value"]
        if not current:
            raise BadRequest("Image has no locations to replace; add them instead.")
        if [loc.get("url") for loc in new] != [loc["url"] for loc in current]:
            raise BadRequest("Locations can only be replaced with the same URLs in the "
                             "same order (metadata may change).")
        own = len(current) - len(row.http_locations or [])
        row.http_locations = [{"url": loc["url"], "metadata": dict(loc.get("metadata") or {})}
                              for loc in new[own:]] or None
        return []
    # remove /locations/N
    access.enforce(ctx, "delete_image_location", row)
    try:
        pos = int(change["path"][1])
    except ValueError:
        raise BadRequest(f"Invalid location index {change['path'][1]!r}.") from None
    if not 0 <= pos < len(current):
        raise BadRequest(f"Invalid location index {pos}.")
    if len(current) == 1:
        raise Forbidden("Cannot remove last location in the image.")
    own = [x for x in (row.stores.split(",") if row.stores else
                       [svc.store.store_id] if row.location else [])]
    if pos < len(own):
        sid = own.pop(pos)
        row.stores = ",".join(own) or None
        row.location = svc.stores[own[0]].location(row.id) if own else None
        return [(sid, row.id)]
    http = list(row.http_locations or [])
    http.pop(pos - len(own))
    row.http_locations = http or None
    return []


def _legacy_hashes(svc: "ImageService", row: Image, data: dict[str, str]) -> dict[str, str]:
    """Glance's _validate_validation_data: values already set must match exactly; new
    ones only on a queued image, md5-sized checksum, the configured algorithm. All 409."""
    new = {}
    for key, value in data.items():
        current = getattr(row, key)
        if value == current:
            continue
        if current:
            raise Conflict(f"{key} is already set with a different value")
        new[key] = value
    if not new:
        return {}
    if row.status != "queued":
        raise Conflict(f"New value(s) for {', '.join(new)} may only be provided when image "
                       "status is 'queued'")
    if "checksum" in new and (len(new["checksum"]) != 32 or not HEX.match(new["checksum"])):
        raise Conflict(f"checksum ({new['checksum']}) is not the correct size for md5")
    if new.get("os_hash_algo") != DEFAULT_ALGO:
        raise Conflict(f"os_hash_algo must be {DEFAULT_ALGO}, not {new.get('os_hash_algo')}")
    value = new.get("os_hash_value", "")
    if len(value) != hashlib.new(DEFAULT_ALGO).digest_size * 2 or not HEX.match(value):
        raise Conflict(f"os_hash_value ({value}) is not the correct size for {DEFAULT_ALGO}")
    return new


def _all(svc: "ImageService", row: Image) -> list[dict[str, Any]]:
    from pocketstack.services.image.views import locations

    return locations(row, svc)


# -- POST /v2/images/{id}/locations (v2.17) -------------------------------------------------

def add_location(svc: "ImageService", ctx: RequestContext, image_id: str, body: Any) -> str:
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    extra = set(body) - {"url", "validation_data"}
    if extra:
        raise BadRequest(f"Unknown keys in the location: {', '.join(sorted(extra))}")
    url = body.get("url")
    _http_store(svc, url)
    hashes = _check_hashes(body.get("validation_data") or None)
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "add_image_location", row)
        if row.status != "queued" or row.http_locations or row.stores or row.location:
            raise Conflict("The location of an image can only be added while it is queued "
                           "and has no data.")
        task = ImageTask(type="location_import", status="processing", owner=row.owner,
                         image_id=row.id, request_id=ctx.request_id, user_id=ctx.user_id,
                         input={"image_id": row.id, "loc_url": url,
                                "validation_data": hashes},
                         expires_at=utcnow() + dt.timedelta(hours=48))
        s.add(task)
        s.flush()
        row.status = "importing"
        row.updated_at = utcnow()
        return task.id


def run_location_import(svc: "ImageService", task_id: str) -> None:
    with svc.db.read() as s:
        task = s.get(ImageTask, task_id)
        if task is None or task.status != "processing":
            return
        image_id, url = task.image_id, task.input["loc_url"]
        hashes = dict(task.input.get("validation_data") or {})
    store = svc.http_store()
    algo = hashes.get("os_hash_algo") or DEFAULT_ALGO
    secure = svc.settings.image.do_secure_hash
    try:
        if store is None:
            raise BadRequest("The http store is no longer configured.")
        try:
            size = store.size_of(url)
        except OSError as exc:
            raise BadRequest(f"Location {url} could not be read: {exc}") from None
        metadata = {"store": store.store_id} if len(svc.stores) > 1 else {}
        with svc.db.write() as s:
            row = s.get(Image, image_id)
            if row is None or row.status != "importing":
                raise Conflict("Image was deleted or changed during the location import.")
            row.http_locations = [{"url": url, "metadata": metadata}]
            row.size = size
            if not secure:
                for key, value in hashes.items():
                    setattr(row, key, value)
            row.os_hash_algo = algo if (secure or hashes) else None
            if not hashes or not secure:
                # Nothing to verify: usable now; the hashes follow when computed.
                row.status = "active"
            row.updated_at = utcnow()
        if secure:
            checksum, value = _hash(svc, image_id, store, url, algo)
            if hashes and value != hashes.get("os_hash_value"):
                raise BadRequest(f"os_hash_value: ({hashes.get('os_hash_value')}) not matched "
                                 f"with actual os_hash_value: ({value})")
            with svc.db.write() as s:
                row = s.get(Image, image_id)
                if row is None:
                    raise Conflict("Image was deleted during the location import.")
                row.checksum, row.os_hash_value, row.os_hash_algo = checksum, value, algo
                row.status = "active"
                row.updated_at = utcnow()
    except Exception as exc:  # noqa: BLE001 - recorded on the task
        message = exc.message if isinstance(exc, PocketError) else str(exc) or repr(exc)
        with svc.db.write() as s:
            fail_task(s, task_id, image_id, message)
            row = s.get(Image, image_id)
            if row is not None and row.status == "importing":
                # The http store never deletes: the location stays, the image is unusable.
                row.status = "queued"
                row.checksum = row.os_hash_value = row.os_hash_algo = None
                row.updated_at = utcnow()
        log.warning("image %s: location import %s failed: %s", image_id, task_id, message)
        return
    with svc.db.write() as s:
        task = s.get(ImageTask, task_id)
        if task is not None:
            task.status, task.result = "success", {"image_id": image_id}
            task.updated_at = utcnow()


def _hash(svc: "ImageService", image_id: str, store: Any, url: str, algo: str
          ) -> tuple[str, str]:
    """md5 and ``algo`` of the data at ``url``; stops if the image is deleted meanwhile."""
    md5, digest = hashlib.md5(usedforsecurity=False), hashlib.new(algo)
    for n, chunk in enumerate(store.read_location(url.split("#", 1)[0], chunk_size=4 << 20)):
        md5.update(chunk)
        digest.update(chunk)
        if n % 16 == 15:
            with svc.db.read() as s:
                if s.get(Image, image_id) is None:
                    raise Conflict("Image was deleted; hash calculation cancelled.")
    return md5.hexdigest(), digest.hexdigest()
