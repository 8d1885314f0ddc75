"""A QEMU server's disk and the base images under it. An image is checked before it boots
(a disk format QEMU reads, a boot sector or a kernel) and pinned as a base: linked, or
copied, with its kernel and ramdisk into ``qemu-base/<image id>`` (root's 0644 in the 0700
qemu-base), so a server outlives its image's deletion; a base no server's config.json names
goes with its last server. The server's disk.qcow2 is an overlay created over its base
without opening it (the backing chain is given at each use). qemu-img reads and copies what
QEMU could have written as the server's user, through fds, never following the files a
header names; an image that names another file (a backing file, a qcow2 data file, a vmdk
extent) is refused as a base.

A mixin of QemuDriver, as qemu_confine is: it uses the driver's directories, per-server
locks and the server's user (``base_dir``, ``instances_dir``, ``_dir``, ``_lock``,
``_ids``, ``_run_as``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute.base import DriverError, InstanceSpec
from pocketstack.drivers.compute.qemu_confine import Ids
from pocketstack.drivers.compute.qemu_process import (COW_FORMATS, DEFAULT_APPEND,
                                                      QEMU_FORMATS, QEMU_IMG, kernel_cmdline,
                                                      root_node, safe_id)


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, dst)


def _readable(path: Path) -> None:
    """A base (image, kernel, ramdisk): root's and read-only to QEMU users, which read it
    through the fds the driver gives them (qemu-base itself is root's 0700). A hard link
    shares the mode with the image store's file, whose directory is 0700 too."""
    if stat.S_IMODE(os.stat(path).st_mode) != 0o644:
        os.chmod(path, 0o644)


class QemuDisks:
    base_dir: Path
    instances_dir: Path
    _dir: Any
    _lock: Any
    _ids: Any
    _run_as: Any

    def _base(self, image_id: str, path: Path | None, what: str) -> Path:
        if path is None or not Path(path).is_file():
            raise DriverError(f"{what} {image_id} has no data file to boot from.")
        self.base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dst = self.base_dir / safe_id(image_id, f"{what.lower()} id")
        with self._lock("base-" + image_id):
            _link_or_copy(Path(path), dst)
            _readable(dst)
        return dst

    def _boot_config(self, spec: InstanceSpec) -> dict[str, Any]:
        """Check the image can boot as a VM and pin its files; the config.json to write."""
        disk_format = (spec.disk_format or "raw").lower()
        container_format = (spec.container_format or "bare").lower()
        if container_format == "docker" or disk_format in ("aki", "ari", "iso") or \
                disk_format not in QEMU_FORMATS:
            if container_format == "docker":
                why = "is a container root file system (container_format docker)"
            elif disk_format in ("aki", "ari"):
                why = (f"is a {'kernel' if disk_format == 'aki' else 'ramdisk'} (disk_format "
                       f"{disk_format}); boot the ami image whose kernel_id/ramdisk_id name it")
            else:
                why = f"has disk_format {disk_format}"
            raise DriverError(f"Image {spec.image_id} {why}: the qemu compute driver boots "
                              "disk images (qcow2, raw, ami, vmdk, vdi, vhd, vhdx).")
        fmt = QEMU_FORMATS[disk_format]
        if spec.image_path is None or not Path(spec.image_path).is_file():
            raise DriverError(f"Image {spec.image_id} has no data file to boot from.")
        kernel = spec.kernel_path
        if fmt == "raw" and kernel is None:
            with open(spec.image_path, "rb") as fh:
                head = fh.read(512)
            if len(head) == 512 and head[257:262] == b"ustar":
                raise DriverError(f"Image {spec.image_id} is a tar archive (a container root "
                                  "file system), not a disk; boot it with the container "
                                  "compute driver.")
            if head[510:512] != b"\x55\xaa":
                raise DriverError(f"Image {spec.image_id} is not bootable: its raw disk has no "
                                  "boot sector and the image names no kernel_id.")
        props = spec.image_properties or {}
        safe_id(spec.id, "server id")
        cfg: dict[str, Any] = {
            "id": spec.id, "image_id": spec.image_id, "disk_format": disk_format,
            "base": str(self._base(spec.image_id, spec.image_path, "Image")),
            "base_format": fmt, "vcpus": spec.vcpus, "memory_mb": spec.memory_mb,
            "root_gb": spec.root_gb, "macs": [p.get("mac_address") for p in spec.network_info
                                              if p.get("mac_address")]}
        if kernel is not None:
            cfg["append"] = kernel_cmdline(props.get("os_command_line") or DEFAULT_APPEND)
            cfg["kernel"] = str(self._base(str(props.get("kernel_id")), kernel, "Kernel image"))
            if spec.ramdisk_path is not None:
                cfg["ramdisk"] = str(self._base(str(props.get("ramdisk_id")), spec.ramdisk_path,
                                                "Ramdisk image"))
        return cfg

    def _image_info(self, path: Path, fmt: str, ids: Ids) -> dict[str, Any]:
        """``qemu-img info`` of ``path`` read as ``fmt`` by the server's user (through an
        fd: it may not reach the path), never following a backing file."""
        node: dict[str, Any] = {"driver": fmt, "file": {"driver": "file"}}
        if fmt in COW_FORMATS:
            node["backing"] = None
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            node["file"]["filename"] = f"/proc/self/fd/{fd}"
            res = self._run_as(ids, [QEMU_IMG, "info", "-U", "--output=json",
                                     "json:" + json.dumps(node)], [fd], 60)
        finally:
            os.close(fd)
        if res.returncode != 0:
            raise DriverError(f"qemu-img cannot read {path.name}: {res.stderr.strip()[-300:]}")
        return json.loads(res.stdout)

    def _image_size(self, path: Path, fmt: str, ids: Ids) -> int:
        return int(self._image_info(path, fmt, ids)["virtual-size"])

    def _inspect_base(self, image_id: str, path: Path, fmt: str, ids: Ids) -> int:
        """The virtual size of an image that is about to be a server's base; DriverError
        if the image names any other file (a backing file, a qcow2 external data file, a
        vmdk extent or descriptor): QEMU would open it as the guest's disk."""
        info = self._image_info(path, fmt, ids)
        data = (info.get("format-specific") or {}).get("data") or {}
        why = None
        if info.get("backing-filename") or info.get("full-backing-filename"):
            why = "has a backing file"
        elif data.get("data-file"):
            why = "keeps its data in an external file (qcow2 data-file)"
        elif fmt == "vmdk" and (
                data.get("create-type") not in ("monolithicSparse", "streamOptimized")
                or any(e.get("filename") != info.get("filename")
                       for e in data.get("extents") or [])):
            why = (f"is a vmdk of type {data.get('create-type')!r} (only monolithicSparse "
                   "and streamOptimized ones, whose data is in the image itself, boot)")
        if why:
            raise DriverError(f"Image {image_id} {why}: it cannot be a server's disk.")
        return int(info["virtual-size"])

    def _create_disk(self, server_id: str, cfg: dict[str, Any], ids: Ids) -> None:
        d = self._dir(server_id)
        size = max(self._inspect_base(cfg["image_id"], Path(cfg["base"]), cfg["base_format"],
                                      ids),
                   int(cfg.get("root_gb") or 0) * 2**30)
        tmp = d / "disk.qcow2.tmp"
        tmp.unlink(missing_ok=True)
        # -u: the base is not opened (root would; the backing chain is given at each use)
        res = subprocess.run([QEMU_IMG, "create", "-q", "-u", "-f", "qcow2", "-b", cfg["base"],
                              "-F", cfg["base_format"], str(tmp), str(size)],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise DriverError(f"Could not create the server's disk: {res.stderr.strip()[-300:]}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
            if ids is not None:
                os.fchown(fh.fileno(), *ids)
            os.fchmod(fh.fileno(), 0o600)
        os.replace(tmp, d / "disk.qcow2")

    def _gc_bases(self) -> None:
        """Remove base files no server's config refers to any more."""
        if not self.base_dir.is_dir():
            return
        with self._lock("gc"):
            used: set[str] = set()
            for d in self.instances_dir.iterdir() if self.instances_dir.is_dir() else []:
                try:
                    cfg = json.loads((d / "config.json").read_text())
                except (OSError, ValueError):
                    if d.is_dir() and not (d / "config.json").exists():
                        continue
                    return  # unreadable config: keep everything
                used.update(str(cfg.get(k)) for k in ("base", "kernel", "ramdisk") if cfg.get(k))
                if (cfg.get("rescue_disk") or {}).get("base"):  # in rescue: the own base too
                    used.add(str(cfg["rescue_disk"]["base"]))
            for f in self.base_dir.iterdir():
                if str(f) not in used and not f.name.startswith("."):
                    with self._lock("base-" + f.name):
                        f.unlink(missing_ok=True)

    def _convert(self, server_id: str, cfg: dict[str, Any], fmt: str, target: Path
                 ) -> subprocess.CompletedProcess:
        """qemu-img convert of the server's disk (with the backing chain pinned to its base,
        whatever the disk's header says) into ``target``, as the server's user: the disk
        is QEMU's to write, so a root qemu-img must not trust what it names."""
        ids = self._ids(server_id)
        d = self._dir(server_id)
        size = self._image_size(d / "disk.qcow2", "qcow2", ids)
        target.unlink(missing_ok=True)
        if fmt != "raw":  # a fresh, empty image of that format (nothing in it to trust)
            res = subprocess.run([QEMU_IMG, "create", "-q", "-f", fmt, str(target), str(size)],
                                 capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                return res
        fds: list[int] = []
        try:
            out = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fds.append(out)
            if fmt == "raw":
                os.ftruncate(out, size)
            if ids is not None:
                os.fchown(out, *ids)
            fds.append(os.open(d / "disk.qcow2", os.O_RDONLY | os.O_CLOEXEC))
            fds.append(os.open(cfg["base"], os.O_RDONLY | os.O_CLOEXEC))
            src = root_node(cfg["base_format"], f"/proc/self/fd/{fds[1]}",
                            f"/proc/self/fd/{fds[2]}")
            res = self._run_as(ids, [QEMU_IMG, "convert", "-U", "-n", "--target-is-zero",
                                     "-O", fmt, "json:" + json.dumps(src),
                                     f"/proc/self/fd/{out}"], fds, 3600)
            if ids is not None:
                os.fchown(out, 0, 0)  # the image service's file from here on
            return res
        finally:
            for fd in fds:
                os.close(fd)
