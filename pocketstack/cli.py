"""The `pocketstack` command: up, down, status, openrc, clouds-yaml, db, keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from pocketstack.config import Settings, load_settings

DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                        envvar="POCKETSTACK_DATA_DIR",
                        help="Where this cloud keeps its state (default /var/lib/pocketstack "
                             "as root, else ~/.local/share/pocketstack).")


def _settings(data_dir: str | None, **overrides: Any) -> Settings:
    try:
        return load_settings(data_dir, **overrides)
    except (ValueError, OSError) as exc:  # a bad pocketstack.toml or POCKETSTACK_* variable
        raise click.ClickException(f"configuration: {exc}") from None


def _runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def _read_runtime(settings: Settings) -> dict[str, Any]:
    try:
        return json.loads(_runtime_file(settings).read_text())
    except (OSError, ValueError):
        return {}


def _write_runtime(settings: Settings, **values: Any) -> None:
    path = _runtime_file(settings)
    data = _read_runtime(settings)
    data.update(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _base_url(settings: Settings) -> str:
    return _read_runtime(settings).get("base_url") or settings.base_url


def _healthy(base_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/healthcheck", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _first_token(base_url: str, password: str) -> None:
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}).encode()
    req = urllib.request.Request(base_url + "/identity/v3/auth/tokens?nocatalog", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 201:
            raise click.ClickException(f"token issue answered {resp.status}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pocketstack")
def main() -> None:
    """OpenStack in one command."""


@main.command()
@DATA_DIR
@click.option("--port", type=int, default=None, help="Port for every API (default 8800).")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("-d", "--detach", is_flag=True, help="Run in the background, supervised.")
@click.option("--supervised", is_flag=True, hidden=True)
def up(data_dir: str | None, port: int | None, host: str | None, detach: bool,
       supervised: bool) -> None:
    """Start the cloud (creating it on first start)."""
    settings = _settings(data_dir, port=port, host=host)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    runtime = _read_runtime(settings)
    if not supervised and (_alive(runtime.get("pid")) or _alive(runtime.get("supervisor_pid"))):
        if _healthy(_base_url(settings)):
            click.echo(f"pocketstack is already running at {_base_url(settings)} "
                       f"(pid {runtime.get('pid')}).")
            return
    if not supervised:
        _check_port(settings)
    if detach:
        _up_detached(settings, data_dir, port, host)
        return
    _serve(settings, quiet=supervised)


def _check_port(settings: Settings) -> None:
    """Refuse early and clearly when the port is taken (often: another cloud on it)."""
    import socket

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, settings.port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); another "
                "pocketstack may be running there: choose another --port") from None


def _serve(settings: Settings, quiet: bool = False) -> None:
    import logging

    from pocketstack import malloc

    malloc.tune()  # before anything allocates: see pocketstack/malloc.py
    from pocketstack.api.http import set_worker_threads

    set_worker_threads(settings.worker_threads)

    import uvicorn

    from pocketstack.app import PocketApp, prepare

    started = time.monotonic()
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    say(f"pocketstack: data in {settings.data_dir}")
    say("pocketstack: migrating the database and bootstrapping identity...")
    cloud = prepare(settings)
    app = PocketApp(cloud)
    say(f"pocketstack: {len(cloud.specs)} services: "
        + ", ".join(f"{s.type} {s.path}" for s in cloud.specs))
    config = uvicorn.Config(app, host=settings.host, port=settings.port, lifespan="on",
                            access_log=False, log_level="warning", loop="auto", http="auto",
                            timeout_keep_alive=75)
    server = uvicorn.Server(config)
    base = settings.base_url
    _write_runtime(settings, pid=os.getpid(), base_url=base, port=settings.port,
                   host=settings.host, degraded=cloud.degraded)

    import threading

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        notes = "" if not cloud.degraded else " (degraded: " + "; ".join(cloud.degraded) + ")"
        data_flag = "" if settings.data_dir == load_settings(None).data_dir else \
            f" --data-dir {settings.data_dir}"
        click.echo(f"pocketstack ready in {elapsed:.1f}s at {base}{notes}\n"
                   f"  credentials: source <(pocketstack openrc admin{data_flag})   "
                   f"or: pocketstack clouds-yaml{data_flag}\n"
                   f"  dashboard: {base}/dashboard/", err=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()


def _up_detached(settings: Settings, data_dir: str | None, port: int | None,
                 host: str | None) -> None:
    log_path = settings.data_dir / "pocketstack.log"
    args = [sys.executable, "-m", "pocketstack.supervisor", str(settings.data_dir)]
    if port:
        args += ["--port", str(port)]
    if host:
        args += ["--host", host]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd="/")
    # "pid" is written by the server itself once it is about to listen: until then the
    # port may still answer for someone else.
    _write_runtime(settings, supervisor_pid=proc.pid, pid=None)
    deadline = time.monotonic() + 60
    started = time.monotonic()
    base = settings.base_url
    with click.progressbar(length=100, label="starting pocketstack", file=sys.stderr) as bar:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _give_up(proc, log_path, "exited early")
            if _alive(_read_runtime(settings).get("pid")) and _healthy(base, 0.5):
                break
            bar.update(5)
            time.sleep(0.1)
        else:
            _give_up(proc, log_path, "did not become ready in 60 s")
    from pocketstack.services.identity.bootstrap import passwords

    try:
        _first_token(base, passwords(settings)["admin"])
    except (OSError, ValueError, KeyError, click.ClickException) as exc:
        _give_up(proc, log_path, f"answered, but issuing a token failed ({exc})")
    runtime = _read_runtime(settings)
    notes = runtime.get("degraded") or []
    note = "" if not notes else " (degraded: " + "; ".join(notes) + ")"
    click.echo(f"pocketstack ready in {time.monotonic() - started:.1f}s at {base}{note}; "
               f"log: {log_path}\n  dashboard: {base}/dashboard/")


def _give_up(proc: subprocess.Popen, log_path: Path, why: str) -> None:
    """Stop the supervisor (it would retry forever) and show why, from the log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
    except OSError:
        tail = []
    raise click.ClickException(f"pocketstack {why}; stopped it. Last lines of {log_path}:\n"
                               + "\n".join(tail))


@main.command()
@DATA_DIR
@click.option("--purge", is_flag=True, help="Also delete the data dir and all it created.")
def down(data_dir: str | None, purge: bool) -> None:
    """Stop the cloud started with `up -d`."""
    settings = _settings(data_dir)
    runtime = _read_runtime(settings)
    stopped = False
    for key in ("supervisor_pid", "pid"):
        pid = runtime.get(key)
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            stopped = True
    _write_runtime(settings, pid=None, supervisor_pid=None) if settings.data_dir.exists() else None
    click.echo("pocketstack stopped." if stopped else "pocketstack was not running.")
    if purge:
        import shutil

        from pocketstack.purge import purge_host_resources

        purge_host_resources(settings)
        shutil.rmtree(settings.data_dir, ignore_errors=True)
        click.echo(f"removed {settings.data_dir}")


@main.command()
@DATA_DIR
def status(data_dir: str | None) -> None:
    """Is the cloud running, where, and is anything degraded?"""
    settings = _settings(data_dir)
    runtime = _read_runtime(settings)
    pid = runtime.get("pid")
    base = _base_url(settings)
    if _alive(pid) and _healthy(base):
        click.echo(f"pocketstack: running (pid {pid}) at {base}")
        for note in runtime.get("degraded") or []:
            click.echo(f"  degraded: {note}")
        click.echo(f"  data: {settings.data_dir}")
    else:
        click.echo(f"pocketstack: not running (data: {settings.data_dir})")
        sys.exit(3)


def _credentials(settings: Settings, user: str) -> dict[str, str]:
    from pocketstack.services.identity.bootstrap import passwords

    pw = passwords(settings)
    if user not in pw:
        raise click.ClickException(f"no user {user!r}; choose admin or demo")
    return {"auth_url": _base_url(settings) + "/identity", "username": user,
            "password": pw[user], "project_name": user, "user_domain_id": "default",
            "project_domain_id": "default", "region_name": settings.identity.region}


@main.command()
@click.argument("user", type=click.Choice(["admin", "demo"]), default="admin")
@DATA_DIR
def openrc(user: str, data_dir: str | None) -> None:
    """Print shell exports for USER, like DevStack's openrc."""
    c = _credentials(_settings(data_dir), user)
    lines = {
        "OS_AUTH_URL": c["auth_url"], "OS_AUTH_TYPE": "password",
        "OS_IDENTITY_API_VERSION": "3", "OS_USERNAME": c["username"],
        "OS_PASSWORD": c["password"], "OS_PROJECT_NAME": c["project_name"],
        "OS_USER_DOMAIN_ID": "default", "OS_PROJECT_DOMAIN_ID": "default",
        "OS_REGION_NAME": c["region_name"], "OS_INTERFACE": "public",
    }
    for key in ("OS_CLOUD", "OS_TOKEN", "OS_SYSTEM_SCOPE", "OS_DOMAIN_NAME", "OS_DOMAIN_ID",
                "OS_PROJECT_ID", "OS_TENANT_NAME", "OS_TENANT_ID"):
        click.echo(f"unset {key}")
    for key, value in lines.items():
        click.echo(f"export {key}={_shell_quote(value)}")


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


@main.command("clouds-yaml")
@DATA_DIR
@click.option("--file", "path", type=click.Path(dir_okay=False), default=None,
              help="clouds.yaml to update (default ~/.config/openstack/clouds.yaml).")
@click.option("--name", default="pocketstack", help="Cloud name prefix.")
def clouds_yaml(data_dir: str | None, path: str | None, name: str) -> None:
    """Write clouds.yaml entries NAME (admin) and NAME-demo."""
    import yaml

    settings = _settings(data_dir)
    target = Path(path or Path.home() / ".config" / "openstack" / "clouds.yaml")
    data: dict[str, Any] = {}
    if target.exists():
        data = yaml.safe_load(target.read_text()) or {}
    clouds = data.setdefault("clouds", {})
    for user, cloud_name in (("admin", name), ("demo", f"{name}-demo")):
        c = _credentials(settings, user)
        clouds[cloud_name] = {
            "auth": {k: c[k] for k in ("auth_url", "username", "password", "project_name",
                                       "user_domain_id", "project_domain_id")},
            "region_name": c["region_name"], "identity_api_version": 3, "interface": "public",
        }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, default_flow_style=False)
    os.replace(tmp, target)
    click.echo(f"wrote clouds {name} and {name}-demo to {target}; try: "
               f"openstack --os-cloud {name} token issue")


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@DATA_DIR
def db_upgrade(data_dir: str | None) -> None:
    """Apply every pending migration."""
    from pocketstack.db import Database, migrate

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    migrate.upgrade(Database(settings.database_url))
    click.echo("database is at the latest schema")


@db.command("revision")
@click.option("--service", required=True)
@click.option("-m", "--message", required=True)
@click.option("--url", default=None,
              help="A scratch database at the current heads (default: a fresh SQLite file).")
def db_revision(service: str, message: str, url: str | None) -> None:
    """Autogenerate a migration for SERVICE's models only (developer command)."""
    from pocketstack.db import Database, migrate

    if url is None:
        scratch = Path(f"/tmp/pocketstack-revision-{service}-{os.getpid()}.db")
        scratch.unlink(missing_ok=True)
        url = f"sqlite:///{scratch}"
    migrate.upgrade(Database(url))
    migrate.revision(url, service, message)


@main.group()
def keys() -> None:
    """Fernet key repositories."""


@keys.command("rotate")
@DATA_DIR
def keys_rotate(data_dir: str | None) -> None:
    """Rotate the token keys (staged -> primary, new staged, prune the oldest)."""
    from pocketstack.services.identity.keys import KeyRepository

    settings = _settings(data_dir)
    repo = KeyRepository(settings.data_dir / "fernet-keys", settings.identity.max_active_keys)
    primary = repo.rotate()
    click.echo(f"rotated: key {primary} is now primary")


if __name__ == "__main__":
    main()
