"""Nova host-side routes: availability zones, aggregates, hypervisors, os-services and
the legacy os-hosts API (all backed by svc.hosts_api). Registered from routes.register."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.compute.hosts import host_uptime
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.routes import required_body

V = "/v2.1"
Handler = Callable[[Req, APIVersion], Awaitable[Response]]


def register(svc: Any, add: Callable[..., None]) -> None:  # noqa: C901 - a table of small handlers
    def az_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            zones = await run(svc.hosts_api.zones, req.ctx, detail)
            return json({"availabilityZoneInfo": zones})
        handler.__name__ = "az_detail" if detail else "az"
        return handler

    add("get", V + "/os-availability-zone", az_list(False))
    add("get", V + "/os-availability-zone/detail", az_list(True))

    hosts = svc.hosts_api

    async def aggs(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.aggregates, req.ctx)
        return json({"aggregates": [hosts.aggregate_view(a, ver) for a in rows]})

    async def agg_create(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "aggregate")
        a = await run(hosts.create_aggregate, req.ctx, body["aggregate"])
        view = hosts.aggregate_view(a, ver)
        for k in ("hosts", "metadata"):
            view.pop(k, None)
        return json({"aggregate": view})

    async def agg_show(req: Req, ver: APIVersion) -> Response:
        return json({"aggregate": hosts.aggregate_view(
            await run(hosts.aggregate, req.ctx, req.params["agg_id"]), ver)})

    async def agg_update(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "aggregate")
        a = await run(hosts.update_aggregate, req.ctx, req.params["agg_id"], body["aggregate"])
        return json({"aggregate": hosts.aggregate_view(a, ver)})

    async def agg_delete(req: Req, ver: APIVersion) -> Response:
        await run(hosts.delete_aggregate, req.ctx, req.params["agg_id"])
        return empty(200)

    async def agg_action(req: Req, ver: APIVersion) -> Response:
        a = await run(hosts.aggregate_action, req.ctx, req.params["agg_id"], await req.json())
        return json({"aggregate": hosts.aggregate_view(a, ver)})

    add("get", V + "/os-aggregates", aggs)
    add("post", V + "/os-aggregates", agg_create)
    add("get", V + "/os-aggregates/{agg_id}", agg_show)
    add("put", V + "/os-aggregates/{agg_id}", agg_update)
    add("delete", V + "/os-aggregates/{agg_id}", agg_delete)
    add("post", V + "/os-aggregates/{agg_id}/action", agg_action)

    async def agg_images(req: Req, ver: APIVersion) -> Response:
        if not ver.has("aggregate_image_cache"):
            raise NotFound("The resource could not be found.")
        await run(hosts.cache_images, req.ctx, req.params["agg_id"], await req.json())
        return empty(202)

    add("post", V + "/os-aggregates/{agg_id}/images", agg_images)

    def hv_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            rows = await run(hosts.hypervisors, req.ctx, req.query, ver, detail)
            return json({"hypervisors": rows})
        handler.__name__ = "hv_detail" if detail else "hv"
        return handler

    async def hv_stats(req: Req, ver: APIVersion) -> Response:
        if ver.has("hypervisor_no_stats"):
            raise NotFound("The resource could not be found.")
        return json({"hypervisor_statistics": await run(hosts.statistics, req.ctx)})

    async def hv_show(req: Req, ver: APIVersion) -> Response:
        return json({"hypervisor": await run(hosts.hypervisor, req.ctx, req.params["hv_id"], ver)})

    async def hv_search(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.hypervisors, req.ctx,
                         {"hypervisor_hostname_pattern": req.params["pattern"]}, ver, False)
        return json({"hypervisors": rows})

    async def hv_servers(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.hypervisors, req.ctx,
                         {"hypervisor_hostname_pattern": req.params["pattern"],
                          "with_servers": "true"}, ver, False)
        return json({"hypervisors": rows})

    add("get", V + "/os-hypervisors", hv_list(False))
    add("get", V + "/os-hypervisors/detail", hv_list(True))
    add("get", V + "/os-hypervisors/statistics", hv_stats)
    add("get", V + "/os-hypervisors/{hv_id}", hv_show)
    async def hv_uptime(req: Req, ver: APIVersion) -> Response:
        if ver.at_least(2, 88):
            raise NotFound("The resource could not be found.")
        body = await run(hosts.hypervisor, req.ctx, req.params["hv_id"], ver)
        uptime = host_uptime()  # this machine's (all hypervisors here share it)
        return json({"hypervisor": {k: body[k] for k in ("id", "hypervisor_hostname", "state",
                                                          "status")} | {"uptime": uptime}})

    add("get", V + "/os-hypervisors/{hv_id}/uptime", hv_uptime)
    add("get", V + "/os-hypervisors/{pattern}/search", hv_search)
    add("get", V + "/os-hypervisors/{pattern}/servers", hv_servers)

    async def services(req: Req, ver: APIVersion) -> Response:
        return json({"services": await run(hosts.services, req.ctx, req.query, ver)})

    async def service_legacy(req: Req, ver: APIVersion) -> Response:
        if ver.has("uuid_ids"):
            raise NotFound("The resource could not be found.")
        action = req.params["action"]
        body = await req.json()
        if not isinstance(body, dict) or not isinstance(body.get("host"), str):
            raise BadRequest("Invalid input for field/attribute host: is a required property")
        if action == "enable":
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"], status="enabled", ver=ver))
            return json({"service": {"host": view["host"], "binary": "nova-compute", "status": "enabled"}})
        if action in ("disable", "disable-log-reason"):
            reason = body.get("disabled_reason") if action == "disable-log-reason" else None
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"], status="disabled",
                                                       reason=reason, ver=ver))
            out = {"host": view["host"], "binary": "nova-compute", "status": "disabled"}
            if reason is not None:
                out["disabled_reason"] = reason
            return json({"service": out})
        if action == "force-down":
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"],
                                                       forced_down=bool(body.get("forced_down")), ver=ver))
            return json({"service": {"host": view["host"], "binary": "nova-compute",
                                     "forced_down": view.get("forced_down", False)}})
        raise NotFound(f"Unknown action {action}")

    async def service_update(req: Req, ver: APIVersion) -> Response:
        if not ver.has("uuid_ids"):
            return await service_legacy(req, ver)
        body = await req.json()
        if not isinstance(body, dict) or not body or set(body) - {"status", "disabled_reason", "forced_down"}:
            raise BadRequest("Invalid input for field/attribute service")
        status = body.get("status")
        if status is not None and status not in ("enabled", "disabled"):
            raise BadRequest(f"Invalid input for field/attribute status. Value: {status}.")
        view = await run(lambda: hosts.set_service(
            req.ctx, service_id=req.params["action"], status=status,
            reason=body.get("disabled_reason"), forced_down=body.get("forced_down"), ver=ver))
        return json({"service": view})

    async def service_delete(req: Req, ver: APIVersion) -> Response:
        await run(hosts.delete_service, req.ctx, req.params["action"])
        return empty(204)

    from pocketstack.services.compute.hosts import OsHosts

    os_hosts = OsHosts(hosts)

    def before_243(ver: APIVersion) -> None:
        if ver.at_least(2, 43):
            raise NotFound("The resource could not be found.")

    async def hosts_list(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json({"hosts": await run(os_hosts.list_, req.ctx, req.query.get("zone"))})

    async def host_show(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json({"host": await run(os_hosts.show, req.ctx, req.params["host"])})

    async def host_update(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json(await run(os_hosts.update, req.ctx, req.params["host"], await req.json()))

    async def host_power(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        action = req.params["action"]
        if action not in ("startup", "shutdown", "reboot"):
            raise NotFound("The resource could not be found.")
        await run(os_hosts.power_action, req.ctx, req.params["host"], action)
        return empty(200)

    add("get", V + "/os-hosts", hosts_list)
    add("get", V + "/os-hosts/{host}", host_show)
    add("put", V + "/os-hosts/{host}", host_update)
    add("get", V + "/os-hosts/{host}/{action}", host_power)
    add("get", V + "/os-services", services)
    add("put", V + "/os-services/{action}", service_update)
    add("delete", V + "/os-services/{action}", service_delete)
