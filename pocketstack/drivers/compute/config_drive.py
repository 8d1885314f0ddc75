"""Config drives as Nova writes them (nova/virt/configdrive.py: genisoimage -J -r -V config-2):
an ISO 9660 image with Rock Ridge and Joliet names, volume label ``config-2``.

Pure Python (pycdlib): no shell, no mount; the tree's paths come from our own metadata
code (openstack/<version>/..., ec2/<version>/...), never from a tenant, and are checked
again here before they name anything. Tenant data (user data, metadata values) is only
ever file *content*.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

LABEL = "config-2"
PUBLISHER = "pocketstack"  # Nova: "OpenStack Compute <version>"
# the path components our tree uses: versions, document names, "openstack", "ec2", "content"
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def _check(path: str) -> list[str]:
    parts = path.split("/")
    if not parts or any(not _COMPONENT.match(p) or p in (".", "..") for p in parts):
        raise ValueError(f"config drive path {path!r} is not one of ours")
    return parts


def _iso9660_name(component: str, is_dir: bool) -> str:
    """The plain ISO 9660 (level 4) name; readers use the Rock Ridge / Joliet names."""
    name = re.sub(r"[^A-Z0-9_.]", "_", component.upper())
    return name if is_dir else f"{name};1"


def build_iso(tree: dict[str, bytes], target: Path) -> None:
    """Write the files of ``tree`` (relative path -> content) as an ISO 9660 image at
    ``target``: atomically (a temporary file, fsync, rename), mode 0600 root's."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=LABEL,
            pub_ident_str=PUBLISHER, app_ident_str=PUBLISHER)
    made: set[str] = set()
    for path in sorted(tree):
        parts = _check(path)
        for depth in range(1, len(parts)):
            d = "/".join(parts[:depth])
            if d in made:
                continue
            iso.add_directory(
                "/" + "/".join(_iso9660_name(p, True) for p in parts[:depth]),
                rr_name=parts[depth - 1], joliet_path="/" + d)
            made.add(d)
        data = tree[path]
        iso.add_fp(io.BytesIO(data), len(data),
                   "/" + "/".join(_iso9660_name(p, i < len(parts) - 1)
                                  for i, p in enumerate(parts)),
                   rr_name=parts[-1], joliet_path="/" + path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            iso.write_fp(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        iso.close()
    os.replace(tmp, target)


def read_iso(source: Path) -> tuple[str, dict[str, bytes]]:
    """(volume label, relative path -> content) of an ISO made by build_iso, by its Rock
    Ridge names."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(source))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        out: dict[str, bytes] = {}
        for dirname, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                full = f"{dirname.rstrip('/')}/{name}"
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=full)
                out[full.lstrip("/")] = buf.getvalue()
        return label, out
    finally:
        iso.close()


def extract_iso(source: Path, dest: Path) -> None:
    """The ISO's files as a read-only directory tree at ``dest`` (root's, dirs 0555, files
    0444), for containers that get the config drive as a bind mount. Made beside ``dest``
    and renamed into place; an existing ``dest`` is replaced."""
    import shutil

    _label, files = read_iso(source)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp, 0o755)
    try:
        for path, data in sorted(files.items()):
            parts = _check(path)
            cur = tmp
            for p in parts[:-1]:
                cur = cur / p
                if not cur.is_dir():
                    os.mkdir(cur, 0o755)
            fd = os.open(cur / parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o444)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for root, dirs, _files in os.walk(tmp):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o555)
        os.chmod(tmp, 0o555)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            _rmtree_ro(old)
            os.replace(dest, old)
            os.replace(tmp, dest)
            _rmtree_ro(old)
        else:
            os.replace(tmp, dest)
    except BaseException:
        _rmtree_ro(tmp)
        raise


def _rmtree_ro(path: Path) -> None:
    """rmtree of a tree made read-only by extract_iso (root ignores modes, but be exact)."""
    import shutil

    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        os.chmod(root, 0o755)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)


# -- containers ------------------------------------------------------------------------------
CONTAINER_PATH = "/config-drive"  # where a container sees its drive's files (H3's guest init)


def container_mounts(server_dir: Path, spec) -> list[dict]:  # noqa: ANN001 - InstanceSpec
    """The OCI mounts a container server gets for its config drive: the ISO's files,
    extracted by pycdlib (never mounted on the host) into ``<server dir>/config-drive``
    (root's, read-only), bind-mounted read-only, nosuid, nodev, noexec at /config-drive.
    Extracted again when the ISO is newer than the tree (a rebuild); none without a drive."""
    iso = getattr(spec, "config_drive", None)
    tree = server_dir / "config-drive"
    if iso is None or not Path(iso).exists():
        _rmtree_ro(tree)
        return []
    stamp = server_dir / "config-drive.stamp"
    want = f"{Path(iso).stat().st_mtime_ns}:{Path(iso).stat().st_size}"
    if not tree.is_dir() or not stamp.exists() or stamp.read_text() != want:
        extract_iso(Path(iso), tree)
        stamp.write_text(want)
    return [{"destination": CONTAINER_PATH, "type": "bind", "source": str(tree),
             "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}]
