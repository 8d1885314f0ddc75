"""Fetching image data from URLs for import: Glance's URL filtering
(glance.common.utils.validate_import_uri, [image] web_download_*), re-checked on every
redirect, and streaming a response into the staging area through an UploadSession
(hashing, size cap, staging quota), for web-download and glance-download."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Gone
from pocketstack.services.image.models import Image

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

FETCH_CHUNK = 1 << 20


def _list(value: str) -> list[str]:
    return [v.strip().lower() for v in value.split(",") if v.strip()]


def _normalize_host(host: str | None) -> str | None:
    """Glance normalises IPv4/IPv6 literals so 127.1 or ::ffff:127.0.0.1 cannot slip past
    a host list; names are compared lower-cased."""
    if not host:
        return None
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:  # inet_aton spellings (127.1, 0x7f.1) that libc would accept
            import socket

            addr = ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
        except OSError:
            return host.lower()
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


def validate_uri(cfg: Any, uri: Any) -> bool:
    """True when ``uri`` passes [image] web_download_* filtering (an allowed list, when
    set, makes its disallowed list ignored, as in Glance)."""
    if not isinstance(uri, str) or not uri:
        return False
    try:
        parsed = urllib.parse.urlparse(uri)
        port = parsed.port
    except ValueError:
        return False
    wl_s, bl_s = _list(cfg.web_download_allowed_schemes), _list(cfg.web_download_disallowed_schemes)
    wl_h, bl_h = _list(cfg.web_download_allowed_hosts), _list(cfg.web_download_disallowed_hosts)
    wl_p = [int(p) for p in _list(cfg.web_download_allowed_ports)]
    bl_p = [int(p) for p in _list(cfg.web_download_disallowed_ports)]
    if wl_s:
        bl_s = []
    if wl_h:
        bl_h = []
    wl_h = [_normalize_host(h) for h in wl_h]
    bl_h = [_normalize_host(h) for h in bl_h]
    if wl_p:
        bl_p = []
    scheme = parsed.scheme.lower()
    if not scheme or (wl_s and scheme not in wl_s) or scheme in bl_s:
        return False
    host = _normalize_host(parsed.hostname)
    if not host or (wl_h and host not in wl_h) or host in bl_h:
        return False
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    if port is not None and ((wl_p and port not in wl_p) or port in bl_p):
        return False
    return True


def fetch(svc: "ImageService", image_id: str, uri: Any,
          headers: dict[str, str] | None = None, expect_size: int | None = None,
          what: str = "web-download") -> None:
    """Stream ``uri`` into the staging area through an UploadSession (web-download, and
    glance-download's data)."""
    from pocketstack.services.image.data import UploadSession, _used_bytes

    cfg = svc.settings.image
    if not validate_uri(cfg, uri):
        raise BadRequest(f"URI for {what} does not pass filtering: {uri}")
    with svc.db.read() as s:
        row = s.get(Image, image_id)
        if row is None or row.status != "importing":
            raise Gone(f"Image {image_id} was deleted during import.")
        owner = row.owner
        limit_name = "image_stage_total"
        limit_mib = svc.limit(owner, limit_name)
        max_bytes = cfg.image_size_cap
        if limit_mib >= 0:
            max_bytes = min(max_bytes, max(0, limit_mib * (1 << 20)
                                           - _used_bytes(s, owner, True)))
        else:
            limit_name = ""
    writer = svc.store.writer(image_id, "staging")
    session = UploadSession(svc, image_id, owner, "staging", writer, max_bytes=max_bytes,
                            limit_name=limit_name, limit_mib=limit_mib, expected_md5=None,
                            disk_format=None, restore="queued")
    try:
        opener = urllib.request.build_opener(FilteredRedirects(cfg))
        try:
            resp = opener.open(urllib.request.Request(uri, headers={
                "User-Agent": "pocketstack-glance-import", **(headers or {})}),
                timeout=cfg.web_download_timeout)
        except urllib.error.HTTPError as exc:
            raise BadRequest(f"{what} of {uri} failed: HTTP {exc.code} "
                             f"{exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BadRequest(f"{what} of {uri} failed: {reason}") from None
        with resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise session._too_big(int(length))  # noqa: SLF001
            while chunk := resp.read(FETCH_CHUNK):
                session.feed(chunk)
            if length and length.isdigit() and session.size != int(length):
                raise BadRequest(f"{what} of {uri} was cut short: {session.size} of "
                                 f"{length} bytes.")
            if expect_size is not None and session.size != expect_size:
                raise BadRequest(f"{what} of {uri}: {session.size} bytes, the source "
                                 f"image says {expect_size}.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    with svc.db.write() as s:
        row = s.get(Image, image_id)
        if row is None or row.status != "importing":
            svc.store.delete(image_id, "staging")
            raise Gone(f"Image {image_id} was deleted during import.")
        row.staged_size, row.staged_hash = session.size, session.sha.hexdigest()
        row.updated_at = utcnow()


class FilteredRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL that passes the same filtering."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        if not validate_uri(self.cfg, newurl):
            raise urllib.error.URLError(f"redirect to {newurl} does not pass filtering")
        return super().redirect_request(req, fp, code, msg, headers, newurl)
