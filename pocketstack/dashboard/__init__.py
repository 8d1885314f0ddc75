"""The web dashboard at /dashboard: server-rendered pages over the service layer.

``build(cloud)`` returns the ASGI app pocketstack.app mounts at /dashboard. Routes are
data (one table below); static assets are vendored files served from static/ (versions and
licences in static/VENDORED.md), nothing is fetched at run time.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from pocketstack.dashboard.web import HERE, SECURITY_HEADERS, Dashboard


def build(cloud: Any) -> Any:
    from pocketstack.dashboard import admin, auth, images, instances, network, overview, volumes
    from pocketstack.dashboard.session import Sessions, load_secret

    dash = Dashboard(cloud, Sessions(load_secret(cloud.settings.data_dir)))
    p = dash.page
    get, post = ["GET"], ["POST"]
    table = [
        ("/login", get, p(auth.login_form, auth=False)),
        ("/login", post, p(auth.login, auth=False)),
        ("/logout", post, p(auth.logout)),
        ("/switch", post, p(auth.switch_project)),
        ("/", get, p(overview.overview)),
        ("/instances", get, p(instances.instances_page)),
        ("/instances/table", get, p(instances.instances_table)),
        ("/instances/launch", get, p(instances.launch_form)),
        ("/instances/launch", post, p(instances.launch)),
        ("/instances/{server_id}", get, p(instances.instance_page)),
        ("/instances/{server_id}/{action}", post, p(instances.action)),
        ("/networks", get, p(network.networks_page)),
        ("/networks/create", post, p(network.create)),
        ("/ports", get, p(network.ports_page)),
        ("/topology", get, p(network.topology_page)),
        ("/volumes", get, p(volumes.volumes_page)),
        ("/volumes/create", post, p(volumes.create)),
        ("/volumes/attach", post, p(volumes.action)),
        ("/volumes/{volume_id}/{action}", post, p(volumes.action)),
        ("/topology.svg", get, p(network.topology_svg)),
        ("/images", get, p(images.images_page)),
        ("/images/create", post, p(images.image_create)),
        ("/images/{image_id}/file", ["PUT"], p(images.image_upload)),
        ("/images/{image_id}/delete", post, p(images.image_delete)),
        ("/keypairs", get, p(images.keypairs_page)),
        ("/keypairs/create", post, p(images.keypair_create)),
        ("/keypairs/{name}/delete", post, p(images.keypair_delete)),
        ("/admin/services", get, p(admin.services_page)),
        ("/admin/services/{action}", post, p(admin.service_update)),
        ("/admin/flavors", get, p(admin.flavors_page)),
        ("/admin/flavors", post, p(admin.flavor_create)),
        ("/admin/hypervisors", get, p(admin.hypervisors_page)),
        ("/admin/instances", get, p(admin.all_instances_page)),
        ("/admin/system", get, p(admin.system_page)),
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
