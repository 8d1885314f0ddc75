"""Running host commands (ip, nft, dnsmasq) with clear errors, and reading host state."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

from pocketstack.drivers.network.base import DriverError


def run(args: Sequence[str], *, input: str | None = None, check: bool = True,
        timeout: float = 30) -> str:
    try:
        res = subprocess.run(list(args), input=input, capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DriverError(f"{' '.join(args)}: {exc}") from None
    if check and res.returncode != 0:
        raise DriverError(f"{' '.join(args)} failed ({res.returncode}): "
                          f"{(res.stderr or res.stdout).strip()[:500]}")
    return res.stdout


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    return run(["ip", *(["-n", ns] if ns else []), *args], check=check)


def ip_batch(lines: list[str], ns: str | None = None) -> None:
    """Several ip commands in one process (fast); fails on the first error."""
    if lines:
        run(["ip", *(["-n", ns] if ns else []), "-batch", "-"], input="\n".join(lines) + "\n")


def links(ns: str | None = None) -> dict[str, dict]:
    """name -> `ip -j -d link` entry."""
    out = ip("-j", "-d", "link", "show", ns=ns, check=False)
    try:
        return {e["ifname"]: e for e in json.loads(out or "[]")}
    except ValueError:
        return {}


def addresses(dev: str, ns: str | None = None) -> set[str]:
    out = ip("-j", "addr", "show", "dev", dev, ns=ns, check=False)
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return set()
    return {f"{a['local']}/{a['prefixlen']}" for e in data for a in e.get("addr_info", [])
            if a.get("scope") == "global"}


def netns_list() -> set[str]:
    out = run(["ip", "-j", "netns", "list"], check=False)
    try:
        return {e["name"] for e in json.loads(out or "[]")}
    except ValueError:
        return set()


def netns_links(pid: int) -> set[str]:
    """Interface names in process ``pid``'s network namespace (/proc/PID/net is per
    namespace: no nsenter needed)."""
    try:
        with open(f"/proc/{pid}/net/dev") as fh:
            return {line.split(":", 1)[0].strip() for line in fh.readlines()[2:]}
    except OSError:
        return set()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def write_atomic(path: str, text: str) -> bool:
    """Write if different; returns True when the file changed."""
    try:
        with open(path) as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return True
