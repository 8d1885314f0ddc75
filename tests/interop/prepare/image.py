#!/usr/bin/env python3
"""scripts/tempest prepare hook for the image service: tempest's [image] and
[image-feature-enabled] options that must agree with how this cloud's Glance behaves.

``image_format_enforcement`` follows the cloud's ``[image] require_format_match`` (read
from DATA_DIR/pocketstack.toml and POCKETSTACK_IMAGE__REQUIRE_FORMAT_MATCH): with it on
(the default, as in Glance), uploads of random bytes labelled qcow2/vhd are refused, so
tempest must skip the tests that rely on them (ListUserImagesTest). The interop list needs
those tests, so interop runs start the cloud with it off; unsafe content (backing files,
mismatching rich formats, malformed headers) is refused either way.

Everything else is read from the cloud, never forced:

- cache: ``image_caching_enabled`` when ``GET /v2/cache`` answers ([image] image_cache).
- locations: ``manage_locations`` follows ``[image] show_multiple_locations``,
  ``do_secure_hash`` the cloud's setting, ``http_store_enabled`` a read-only (http) store.
- stores: ``GET /v2/info/stores/detail``; ``store_weight_enabled`` only when there are
  several stores and their weights differ (tempest's StoreWeightTest).
- web-download (``GET /v2/info/import``): tempest's ``http_qcow2_image`` / ``http_image``
  must be URLs the cloud may fetch. This machine has only loopback, so the hook serves a
  small qcow2 image (qemu-img, or a bare qcow2 header) from a loopback HTTP server on a
  port the cloud's ``[image] web_download_allowed_ports`` lets through (not 80/443), when
  127.0.0.1 passes its host lists. The server runs detached and stops by itself as soon
  as scripts/tempest (this hook's parent) is gone, or after --serve-limit seconds.
  Without such a port, the URLs are left alone and web-download tests fail honestly.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

SERVE_LIMIT = 4 * 3600  # seconds a detached image server may live at most


def require_format_match(data_dir: Path) -> bool:
    value: object = True
    toml = data_dir / "pocketstack.toml"
    if toml.exists():
        value = tomllib.loads(toml.read_text()).get("image", {}).get("require_format_match",
                                                                       True)
    env = os.environ.get("POCKETSTACK_IMAGE__REQUIRE_FORMAT_MATCH")
    if env is not None:
        value = env.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def image_setting(data_dir: Path, key: str, default: str) -> str:
    """An [image] setting of the cloud: pocketstack.toml, then POCKETSTACK_IMAGE__<KEY>."""
    value: object = default
    toml = data_dir / "pocketstack.toml"
    if toml.exists():
        value = tomllib.loads(toml.read_text()).get("image", {}).get(key, default)
    return str(os.environ.get(f"POCKETSTACK_IMAGE__{key.upper()}", value))


def _call(url: str, token: str | None = None, body: dict | None = None) -> tuple[dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json",
                                          **({"X-Auth-Token": token} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}"), dict(resp.headers)


def admin_token(url: str, data_dir: Path) -> str:
    password = json.loads((data_dir / "passwords.json").read_text())["admin"]
    _, headers = _call(url + "/identity/v3/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    return headers.get("X-Subject-Token") or headers.get("x-subject-token") or ""


def _csv(value: str) -> list[str]:
    return [v.strip().lower() for v in value.split(",") if v.strip()]


def loopback_port(data_dir: Path) -> int | None:
    """A free loopback port that the cloud's web-download filtering lets through."""
    hosts = _csv(image_setting(data_dir, "web_download_allowed_hosts", ""))
    bad_hosts = _csv(image_setting(data_dir, "web_download_disallowed_hosts", ""))
    if (hosts and "127.0.0.1" not in hosts) or (not hosts and "127.0.0.1" in bad_hosts):
        return None
    ports = [int(p) for p in _csv(image_setting(data_dir, "web_download_allowed_ports",
                                                "80,443"))]
    for port in ports:
        if port in (80, 443):
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return None


def make_qcow2(path: Path) -> None:
    """A small, valid, empty qcow2 image (1 MiB virtual)."""
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"],
                       check=True)
        return
    hdr = bytearray(512)  # a version-3 header without backing or data file
    hdr[0:4] = b"QFI\xfb"
    struct.pack_into(">I", hdr, 4, 3)
    struct.pack_into(">I", hdr, 20, 16)
    struct.pack_into(">Q", hdr, 24, 1 << 20)
    struct.pack_into(">I", hdr, 96, 4)
    struct.pack_into(">I", hdr, 100, 104)
    path.write_bytes(bytes(hdr))


def serve(directory: str, port: int, parent: int, limit: float) -> int:
    """The detached image server: loopback only, read-only, ends with its parent."""
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=directory, **kw)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a, **kw: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    end = time.monotonic() + limit
    try:
        while time.monotonic() < end:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            time.sleep(1)
    finally:
        server.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


def start_image_server(data_dir: Path) -> str | None:
    port = loopback_port(data_dir)
    if port is None:
        return None
    directory = tempfile.mkdtemp(prefix="ps-tempest-images-")
    make_qcow2(Path(directory) / "ps-tempest.qcow2")
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", directory,
         "--port", str(port), "--parent", str(os.getppid()),
         "--serve-limit", str(SERVE_LIMIT)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}/ps-tempest.qcow2"
    for _ in range(50):
        try:
            with urllib.request.urlopen(url, timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                return None
            time.sleep(0.1)
    print(f"image hook: serving {url} (pid {proc.pid}) for web-download while "
          f"scripts/tempest (pid {os.getppid()}) runs", file=sys.stderr)
    return url


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--data-dir")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-limit", type=float, default=SERVE_LIMIT,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port, args.parent, args.serve_limit)
    if not args.url or not args.data_dir:
        parser.error("--url and --data-dir are required")
    data_dir = Path(args.data_dir)
    token = admin_token(args.url, data_dir)
    try:
        methods = _call(args.url + "/image/v2/info/import", token)[0][
            "import-methods"]["value"]
        stores = _call(args.url + "/image/v2/info/stores/detail", token)[0]["stores"]
    except OSError:
        return 0  # no image service in this cloud
    weights = {s.get("weight", 0) for s in stores}
    try:  # the cache API answers only where the cloud has an image cache
        _call(args.url + "/image/v2/cache", token)
        caching = True
    except OSError:
        caching = False
    extra_image: dict[str, str] = {}
    if "web-download" in methods:
        url = start_image_server(data_dir)
        if url:
            extra_image = {"http_qcow2_image": url, "http_image": url}
    enforce = require_format_match(data_dir)
    if enforce:
        print("image hook: [image] require_format_match is on, so tempest skips "
              "ListUserImagesTest; start the cloud with it off for interop runs",
              file=sys.stderr)
    print(json.dumps({
        "image": {"container_formats": "bare,ami,ari,aki,ovf,ova",
                  "disk_formats": "qcow2,raw,ami,ari,aki,vhd,vmdk,vdi,iso,vhdx",
                  "image_caching_enabled": caching, **extra_image},
        "image-feature-enabled": {
            "image_format_enforcement": enforce,
            "import_image": bool(methods),
            "store_weight_enabled": len(stores) > 1 and len(weights) > 1,
            "os_glance_reserved": True,
            "manage_locations": image_setting(data_dir, "show_multiple_locations",
                                              "false").lower() in ("1", "true", "yes", "on"),
            "do_secure_hash": image_setting(data_dir, "do_secure_hash",
                                            "true").lower() in ("1", "true", "yes", "on"),
            "http_store_enabled": any(s.get("read-only") == "true" for s in stores),
            "image_conversion": False,
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
