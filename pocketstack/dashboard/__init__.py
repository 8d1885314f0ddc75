"""The web dashboard at /dashboard: server-rendered pages over the service layer.

``build(cloud)`` returns the ASGI app pocketstack.app mounts at /dashboard. Routes are
data (one table below); static assets are vendored files served from static/ (versions and
licences in static/VENDORED.md), nothing is fetched at run time.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from pocketstack.dashboard.web import HERE, SECURITY_HEADERS, Dashboard


def _lazy(ref: str) -> Any:
    """A handler named "module:function", imported at its first request: the pages' modules
    and Jinja cost ~30 ms, which `pocketstack up` need not pay before it is ready."""
    module, name = ref.split(":")
    loaded: list[Any] = []

    async def handler(v: Any) -> Any:
        if not loaded:
            loaded.append(getattr(importlib.import_module(f"pocketstack.dashboard.{module}"),
                                  name))
        return await loaded[0](v)

    handler.__name__ = name
    return handler


def build(cloud: Any) -> Any:
    from pocketstack.dashboard.session import load_secret

    # the signing secret is made at the first start (atomically), used at the first page
    dash = Dashboard(cloud, load_secret(cloud.settings.data_dir))
    p = dash.page
    get, post = ["GET"], ["POST"]
    table = [
        ("/login", get, p(_lazy("auth:login_form"), auth=False)),
        ("/login", post, p(_lazy("auth:login"), auth=False)),
        ("/logout", post, p(_lazy("auth:logout"))),
        ("/switch", post, p(_lazy("auth:switch_project"))),
        ("/", get, p(_lazy("overview:overview"))),
        ("/instances", get, p(_lazy("instances:instances_page"))),
        ("/instances/table", get, p(_lazy("instances:instances_table"))),
        ("/instances/launch", get, p(_lazy("instances:launch_form"))),
        ("/instances/launch", post, p(_lazy("instances:launch"))),
        ("/instances/{server_id}", get, p(_lazy("instances:instance_page"))),
        ("/instances/{server_id}/form/{form}", post, p(_lazy("instance_actions:server_form"))),
        ("/instances/{server_id}/{action}", post, p(_lazy("instances:action"))),
        ("/networks", get, p(_lazy("network:networks_page"))),
        ("/networks/create", post, p(_lazy("network:create"))),
        ("/ports", get, p(_lazy("network:ports_page"))),
        ("/ports/create", post, p(_lazy("network:port_create"))),
        ("/topology", get, p(_lazy("network:topology_page"))),
        ("/volumes", get, p(_lazy("volumes:volumes_page"))),
        ("/volumes/create", post, p(_lazy("volumes:create"))),
        ("/volumes/attach", post, p(_lazy("volumes:action"))),
        ("/volumes/{volume_id}/{action}", post, p(_lazy("volumes:action"))),
        ("/topology.svg", get, p(_lazy("network:topology_svg"))),
        ("/images", get, p(_lazy("images:images_page"))),
        ("/images/create", post, p(_lazy("images:image_create"))),
        ("/images/{image_id}/file", ["PUT"], p(_lazy("images:image_upload"))),
        ("/images/{image_id}/delete", post, p(_lazy("images:image_delete"))),
        ("/keypairs", get, p(_lazy("images:keypairs_page"))),
        ("/keypairs/create", post, p(_lazy("images:keypair_create"))),
        ("/keypairs/{name}/delete", post, p(_lazy("images:keypair_delete"))),
        ("/stacks", get, p(_lazy("stacks:stacks_page"))),
        ("/stacks/launch", get, p(_lazy("stacks:launch_form"))),
        ("/stacks/launch", post, p(_lazy("stacks:launch"))),
        ("/stacks/{stack_id}", get, p(_lazy("stacks:stack_page"))),
        ("/stacks/{stack_id}/delete", post, p(_lazy("stacks:stack_delete"))),
        ("/admin/services", get, p(_lazy("admin:services_page"))),
        ("/admin/services/{action}", post, p(_lazy("admin:service_update"))),
        ("/admin/flavors", get, p(_lazy("admin:flavors_page"))),
        ("/admin/flavors", post, p(_lazy("admin:flavor_create"))),
        ("/admin/hypervisors", get, p(_lazy("admin:hypervisors_page"))),
        ("/admin/instances", get, p(_lazy("admin:all_instances_page"))),
        ("/admin/system", get, p(_lazy("admin:system_page"))),
        ("/admin/projects", get, p(_lazy("admin_projects:projects_page"))),
        ("/admin/projects/{project_id}/quota", post, p(_lazy("admin_projects:quota_update"))),
    ]
    routes: list[Any] = [Route(path, fn, methods=methods) for path, methods, fn in table]
    routes.append(Mount("/static", app=_StaticWithHeaders(StaticFiles(directory=str(HERE / "static")))))
    return Router(routes)


class _StaticWithHeaders:
    """The static files with the same security headers (and a day's caching)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        async def send_with(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", [])]
                for k, v in SECURITY_HEADERS.items():
                    if k != "cache-control":
                        headers.append((k.encode(), v.encode()))
                headers.append((b"cache-control", b"public, max-age=86400"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with)
