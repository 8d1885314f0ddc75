"""The `pocketstack` command as a person uses it: up -d / status / down, crash recovery,
clouds side by side, openrc, clouds-yaml with `openstack --os-cloud`, keys rotate.

Each test starts its own clouds (own data dirs and ports; on the PostgreSQL run, own fresh
databases) and always takes them down again.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port


def cli(*args: str, env: dict[str, str], check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "pocketstack", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"pocketstack {' '.join(args)} -> {res.returncode}\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def base_env(db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POCKETSTACK_", "OS_"))}
    if db_url:
        env["POCKETSTACK_DATABASE__URL"] = db_url
    return env


def openrc_env(data_dir: Path, env: dict[str, str], user: str = "admin") -> dict[str, str]:
    """Run `pocketstack openrc` and apply its unset/export lines the way a shell would."""
    out = cli("openrc", user, "--data-dir", str(data_dir), env=env).stdout
    result = dict(env)
    for line in out.splitlines():
        words = shlex.split(line)
        if words[:1] == ["unset"]:
            result.pop(words[1], None)
        elif words[:1] == ["export"]:
            key, _, value = words[1].partition("=")
            result[key] = value
    return result


def openstack(*args: str, env: dict[str, str], check: bool = True) -> Any:
    res = subprocess.run(["openstack", *args, "-f", "json"], env=env, capture_output=True,
                         text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} -> {res.returncode}\n{res.stderr}")
    return json.loads(res.stdout) if res.returncode == 0 else res


def runtime(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "runtime.json").read_text())


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def http(method: str, url: str, token: str | None = None, body: Any = None,
         subject: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    if subject:
        headers["X-Subject-Token"] = subject
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status, hdrs = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, exc.headers
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(raw) if raw else None


def password_token(port: int, password: str) -> str:
    status, headers, body = http("POST", f"http://127.0.0.1:{port}/identity/v3/auth/tokens",
                                 body={"auth": {"identity": {"methods": ["password"],
                                       "password": {"user": {"name": "admin",
                                                             "domain": {"id": "default"},
                                                             "password": password}}},
                                       "scope": {"project": {"name": "admin",
                                                             "domain": {"id": "default"}}}}})
    assert status == 201, body
    return headers["x-subject-token"]


class Detached:
    """A cloud started with `pocketstack up -d`; `down` on exit whatever happened."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = env

    def up(self) -> subprocess.CompletedProcess:
        return cli("up", "-d", "--data-dir", str(self.data_dir), "--port", str(self.port),
                   env=self.env)

    def down(self) -> None:
        """Stop it and remove what it made on the host (--purge), whatever happened."""
        pids = [self._runtime().get(key) for key in ("supervisor_pid", "pid")]
        if self.data_dir.exists():
            cli("down", "--purge", "--data-dir", str(self.data_dir), env=self.env, check=False)
        for pid in pids:  # belt and braces: never leak a server
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def _runtime(self) -> dict[str, Any]:
        try:
            return runtime(self.data_dir)
        except (OSError, ValueError):
            return {}

    @property
    def password(self) -> str:
        return json.loads((self.data_dir / "passwords.json").read_text())["admin"]

    def __enter__(self) -> "Detached":
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def test_up_detached_status_down_and_crash_recovery(tmp_path, fresh_database_url):
    env = base_env(fresh_database_url)
    data = tmp_path / "cloud"
    name = f"ps-cli-{uuid.uuid4().hex[:8]}"
    with Detached(data, env) as c:
        status = cli("status", "--data-dir", str(data), env=env)
        assert "running" in status.stdout and str(c.port) in status.stdout
        os_env = openrc_env(data, env)
        assert os_env["OS_AUTH_URL"] == f"http://127.0.0.1:{c.port}/identity"
        created = openstack("project", "create", name, env=os_env)
        first = runtime(data)
        assert alive(first["supervisor_pid"]) and alive(first["pid"])

        os.kill(first["pid"], signal.SIGKILL)  # a crash
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = runtime(data)
            if now.get("pid") not in (None, first["pid"]) and healthy(c.port):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the supervisor did not restart the server:\n"
                        f"{(data / 'pocketstack.log').read_text()[-3000:]}")
        assert now["supervisor_pid"] == first["supervisor_pid"]
        shown = openstack("project", "show", name, env=os_env)
        assert shown["id"] == created["id"]

        cli("down", "--data-dir", str(data), env=env)
        assert not alive(now["pid"]) and not alive(now["supervisor_pid"])
        stopped = cli("status", "--data-dir", str(data), env=env, check=False)
        assert stopped.returncode == 3 and "not running" in stopped.stdout

        # Like a reboot: start again on the same data dir; everything is still there.
        c.up()
        assert openstack("project", "show", name, env=openrc_env(data, env))["id"] == created["id"]


def test_two_clouds_side_by_side_openrc_and_clouds_yaml(tmp_path, fresh_database_url):
    env = base_env(fresh_database_url)
    # Two clouds need two databases: on the PostgreSQL run, a uses PostgreSQL, b SQLite.
    with Detached(tmp_path / "a", env) as a, Detached(tmp_path / "b", base_env(None)) as b:
        assert a.port != b.port and a.password != b.password
        env_a, env_b = openrc_env(a.data_dir, env), openrc_env(b.data_dir, env)
        assert env_a["OS_AUTH_URL"].endswith(f":{a.port}/identity")
        assert env_b["OS_AUTH_URL"].endswith(f":{b.port}/identity")
        assert env_a["OS_PASSWORD"] == a.password and env_b["OS_PASSWORD"] == b.password
        assert openstack("token", "issue", env=env_a)["id"]
        only_a = f"ps-cli-a-{uuid.uuid4().hex[:8]}"
        openstack("project", "create", only_a, env=env_a)
        names_b = {p["Name"] for p in openstack("project", "list", env=env_b)}
        assert only_a not in names_b

        clouds = tmp_path / "clouds.yaml"
        cli("clouds-yaml", "--data-dir", str(a.data_dir), "--file", str(clouds),
            "--name", "ps-a", env=env)
        cli("clouds-yaml", "--data-dir", str(b.data_dir), "--file", str(clouds),
            "--name", "ps-b", env=env)
        assert (clouds.stat().st_mode & 0o777) == 0o600  # it holds passwords
        plain = {k: v for k, v in env.items() if not k.startswith("OS_")}
        plain["OS_CLIENT_CONFIG_FILE"] = str(clouds)
        projects_a = {p["Name"] for p in openstack("--os-cloud", "ps-a", "project", "list",
                                                   env=plain)}
        assert only_a in projects_a
        token_b = openstack("--os-cloud", "ps-b-demo", "token", "issue", env=plain)
        assert token_b["project_id"] and token_b["user_id"]
        # the demo user is no admin: it sees its own project only (or is refused outright)
        seen = openstack("--os-cloud", "ps-b-demo", "project", "list", env=plain, check=False)
        if isinstance(seen, list):
            assert {p["Name"] for p in seen} == {"demo"}
        else:
            assert seen.returncode != 0


def test_keys_rotate_keeps_tokens_until_pruned(tmp_path, fresh_database_url):
    env = base_env(fresh_database_url)
    with Detached(tmp_path / "keys", env) as c:
        url = f"http://127.0.0.1:{c.port}/identity/v3/auth/tokens"
        old = password_token(c.port, c.password)

        def valid(token: str) -> int:
            """GET /v3/auth/tokens for ``token``, asked with a token issued just now."""
            return http("GET", url, token=password_token(c.port, c.password), subject=token)[0]

        assert valid(old) == 200
        out = cli("keys", "rotate", "--data-dir", str(c.data_dir), env=env).stdout
        assert "primary" in out
        assert valid(old) == 200  # the key that signed it is still there (now secondary)
        new = password_token(c.port, c.password)
        assert valid(new) == 200

        # A second rotation prunes the key that signed `old` (3 active keys, like Keystone);
        # `new` must have been signed with the key promoted by the first rotation.
        cli("keys", "rotate", "--data-dir", str(c.data_dir), env=env)
        deadline = time.monotonic() + 10  # validated tokens are cached for a moment
        while valid(old) == 200 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert valid(old) == 404
        assert valid(new) == 200
        assert valid(password_token(c.port, c.password)) == 200


def test_up_refuses_a_port_in_use(tmp_path, fresh_database_url):
    env = base_env(fresh_database_url)
    with Detached(tmp_path / "first", env) as first:
        other = tmp_path / "second"
        res = cli("up", "-d", "--data-dir", str(other), "--port", str(first.port),
                  env=base_env(None), check=False)
        assert res.returncode != 0 and "choose another --port" in res.stderr
        assert not (other / "runtime.json").exists()  # nothing was left running
        assert healthy(first.port)


def test_up_detached_gives_up_on_a_broken_config(tmp_path):
    """A cloud that cannot start (its database refuses connections) is reported and no
    supervisor is left retrying in the background."""
    env = base_env("postgresql+psycopg2://nobody:none@127.0.0.1:9/nothing")
    data = tmp_path / "broken"
    started = time.monotonic()
    res = cli("up", "-d", "--data-dir", str(data), "--port", str(free_port()), env=env,
              check=False)
    try:
        assert res.returncode != 0 and "failed to start" in res.stderr, res.stderr
        assert time.monotonic() - started < 45
        assert not alive(runtime(data).get("supervisor_pid"))
    finally:
        Detached(data, env).down()
