"""Shared fixtures: a live pocketstack started the way a user starts it, and its clients.

Set POCKETSTACK_TEST_DATABASE_URL to a PostgreSQL server URL to run the functional tests
on PostgreSQL; each session then gets a fresh database there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_pg_database(server_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"ps_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def _drop_pg_database(server_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


class _PortTaken(Exception):
    pass


class LiveCloud:
    """A pocketstack server process in a temporary data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, db_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._port_given = port is not None
        self.db_url = db_url
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"

    @property
    def server_env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        env.pop("POCKETSTACK_DATA_DIR", None)
        # Functional clouds use the fake network data plane (no host bridges from the shared
        # session); tests/system/network drives the linux driver itself.
        env.setdefault("POCKETSTACK_NETWORK__DRIVER", "fake")
        # ...and the fake compute driver: 3 simulated hypervisors with 2 K20m GPUs each
        # (seed 000's pci_alias); tests/system/compute boots real container servers.
        env.setdefault("POCKETSTACK_COMPUTE__DRIVER", "fake")
        env.setdefault("POCKETSTACK_COMPUTE__FAKE_PCI_DEVICES", "10de:1028:2")
        env.setdefault("POCKETSTACK_COMPUTE__PCI_ALIAS",
                       '{"name": "K20m", "product_id": "1028", "vendor_id": "10de"}')
        if self.db_url:
            env["POCKETSTACK_DATABASE__URL"] = self.db_url
        return env

    def start(self, timeout: float = 60) -> "LiveCloud":
        # free_port() can hand out a port that another process (the other test leg, an
        # outgoing connection's source port) takes before the server binds it: then pick
        # another, unless the caller asked for this very port.
        for _ in range(5):
            try:
                return self._start(timeout)
            except _PortTaken:
                if self._port_given:
                    raise RuntimeError(f"port {self.port} is taken: {self.log()[-1000:]}") from None
                self.port = free_port()
                self.base_url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError("no free port for the cloud after 5 tries")

    def _start(self, timeout: float) -> "LiveCloud":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        start_at = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pocketstack", "up", "--data-dir", str(self.data_dir),
             "--port", str(self.port)], stdout=log, stderr=log, env=self.server_env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.log_path.read_bytes()[start_at:].decode(errors="replace")
                if "address already in use" in out.lower():
                    raise _PortTaken()
                raise RuntimeError(f"pocketstack exited: {out[-3000:]}")
            # Our own ready line, not just any answer on the port: a server that lost the
            # bind race would otherwise take another cloud's answer for its own.
            if b"pocketstack ready in" in self.log_path.read_bytes()[start_at:]:
                try:
                    with urllib.request.urlopen(self.base_url + "/healthcheck", timeout=1):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"pocketstack not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def destroy(self, remove: Path | None = None, timeout: float = 120) -> None:
        """Stop the server, then ``pocketstack down --purge`` with the server's own
        environment (its drivers: servers outlive their cloud by design, so only a purge
        with the same compute driver removes them), then the scratch directory ``remove``."""
        self.stop()
        subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge", "--data-dir",
                        str(self.data_dir)], env=self.server_env, cwd=ROOT,
                       capture_output=True, timeout=timeout)
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # -- credentials and clients ------------------------------------------------------------
    def password(self, user: str = "admin") -> str:
        return json.loads((self.data_dir / "passwords.json").read_text())[user]

    def env(self, user: str = "admin", project: str | None = None,
            password: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update({
            "OS_AUTH_URL": self.base_url + "/identity", "OS_AUTH_TYPE": "password",
            "OS_IDENTITY_API_VERSION": "3", "OS_USERNAME": user,
            "OS_PASSWORD": password or self.password(user), "OS_PROJECT_NAME": project or user,
            "OS_USER_DOMAIN_ID": "default", "OS_PROJECT_DOMAIN_ID": "default",
            "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public",
        })
        return env

    def openstack(self, *args: str, user: str = "admin", project: str | None = None,
                  password: str | None = None, check: bool = True, parse: bool = True,
                  timeout: float = 120) -> Any:
        """Run the real `openstack` CLI; parse its JSON output when it has any."""
        cmd = ["openstack", *args]
        wants_json = parse and any(a in ("list", "show", "create", "issue", "set") for a in args[:3])
        if wants_json and "-f" not in args and args[-1] not in ("delete",):
            cmd += ["-f", "json"]
        res = subprocess.run(cmd, env=self.env(user, project, password), capture_output=True,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}\n"
                                 f"{res.stdout}")
        if not check:
            return res
        out = res.stdout.strip()
        if wants_json and out.startswith(("{", "[")):
            return json.loads(out)
        return out

    def sdk(self, user: str = "admin", project: str | None = None, password: str | None = None):
        import openstack

        return openstack.connect(
            auth_url=self.base_url + "/identity", username=user,
            password=password or self.password(user), project_name=project or user,
            user_domain_id="default", project_domain_id="default", region_name="RegionOne",
            identity_api_version="3")


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    """One live cloud for the whole functional session (SQLite, or PostgreSQL if asked)."""
    pg_server = os.environ.get("POCKETSTACK_TEST_DATABASE_URL")
    db_url, db_name = (None, None)
    if pg_server:
        db_url, db_name = _fresh_pg_database(pg_server)
    data_dir = tmp_path_factory.mktemp("cloud") / "data"
    live = LiveCloud(data_dir, db_url=db_url).start()
    yield live
    live.stop()
    # Remove what the cloud made on the host (namespaces, bridges, dnsmasq...) by name.
    subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge", "--data-dir",
                    str(data_dir)], env=live.server_env, cwd=ROOT, capture_output=True,
                   timeout=120)
    if pg_server and db_name:
        _drop_pg_database(pg_server, db_name)


@pytest.fixture
def fresh_database_url():
    """A database URL for a cloud a test starts itself: None (SQLite in its data dir), or a
    fresh PostgreSQL database when the session runs on PostgreSQL (dropped afterwards)."""
    pg_server = os.environ.get("POCKETSTACK_TEST_DATABASE_URL")
    if not pg_server:
        yield None
        return
    url, name = _fresh_pg_database(pg_server)
    yield url
    _drop_pg_database(pg_server, name)


@pytest.fixture
def scratch_dir():
    path = Path(tempfile.mkdtemp(prefix="pocketstack-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
