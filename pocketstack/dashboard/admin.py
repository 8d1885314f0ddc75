"""Admin pages: compute services (disable with a reason / enable), flavors (create with
extra specs), hypervisors with capacity bars, all instances. The compute policy decides
who may see them: a member's call raises Forbidden, rendered as a 403 page."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY, VER, page_query, paging_values, server_rows
from pocketstack.dashboard.web import View
from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.compute.microversions import APIVersion


async def services_page(v: View) -> Response:
    hosts = v.service("compute").hosts_api
    rows = await v.call(hosts.services, v.ctx, NO_QUERY, VER)
    return v.render("admin_services.html", nav="admin_services", rows=rows, error=None)


async def service_update(v: View) -> Response:
    hosts = v.service("compute").hosts_api
    host, enable = v.field("host"), v.params["action"] == "enable"
    reason = v.field("reason").strip() or None
    try:
        await v.call(hosts.set_service, v.ctx, host=host,
                     status="enabled" if enable else "disabled",
                     reason=None if enable else reason, ver=VER)
    except PocketError as err:
        if err.status == 403:
            raise
        rows = await v.call(hosts.services, v.ctx, NO_QUERY, VER)
        return v.render("admin_services.html", err.status, nav="admin_services", rows=rows,
                        error=err.message)
    return v.redirect("/dashboard/admin/services")


def _flavor_rows(compute: Any, ctx: Any) -> list[dict[str, Any]]:
    from pocketstack.policy import enforce
    from pocketstack.services.compute import flavors

    enforce(ctx, "compute:flavor_manage")  # the page is for those who manage flavors
    rows = flavors.list_(compute, ctx, NO_QUERY)
    return [{"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.memory_mb,
             "disk": f.root_gb, "public": f.is_public,
             "extra_specs": dict(f.extra_specs or {})} for f in rows]


async def flavors_page(v: View) -> Response:
    rows = await v.call(_flavor_rows, v.service("compute"), v.ctx)
    return v.render("admin_flavors.html", nav="admin_flavors", rows=rows, error=None, values={})


def _parse_specs(text: str) -> dict[str, str]:
    specs = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise BadRequest(f"Extra spec line {n} is not key=value: {line!r}")
        key, value = line.split("=", 1)
        specs[key.strip()] = value.strip()
    return specs


def _create_flavor(compute: Any, ctx: Any, body: dict[str, Any], specs: dict[str, str]) -> None:
    from pocketstack.services.compute import flavors

    flavor = flavors.create(compute, ctx, body, True)
    if specs:
        try:
            flavors.set_extra_specs(compute, ctx, flavor.id, specs)
        except PocketError:
            flavors.delete(compute, ctx, flavor.id)  # all or nothing, as the form promised
            raise


async def flavor_create(v: View) -> Response:
    compute = v.service("compute")
    try:
        def num(name: str) -> int:
            try:
                return int(v.field(name, "0") or "0")
            except ValueError:
                raise BadRequest(f"{name} must be a whole number.") from None

        body: dict[str, Any] = {"name": v.field("name"), "vcpus": num("vcpus"),
                                "ram": num("ram"), "disk": num("disk"),
                                "os-flavor-access:is_public": v.field("public") == "on"}
        if v.field("id"):
            body["id"] = v.field("id")
        await v.call(_create_flavor, compute, v.ctx, body, _parse_specs(v.field("extra_specs")))
    except PocketError as err:
        if err.status == 403:
            raise
        rows = await v.call(_flavor_rows, compute, v.ctx)
        values = {k: vals[0] for k, vals in v.form.items() if k != "csrf_token"}
        return v.render("admin_flavors.html", err.status, nav="admin_flavors", rows=rows,
                        error=err.message, values=values)
    return v.redirect("/dashboard/admin/flavors")


# Nova 2.88 took vcpus/memory/disk used and total out of the hypervisor body; the capacity
# bars need them, so this page reads the 2.87 view (uuid ids, the fields still there).
HYPERVISOR_VER = APIVersion(2, 87)


async def hypervisors_page(v: View) -> Response:
    hosts = v.service("compute").hosts_api
    rows = await v.call(hosts.hypervisors, v.ctx, NO_QUERY, HYPERVISOR_VER, True)
    return v.render("admin_hypervisors.html", nav="admin_hypervisors", rows=rows)


async def all_instances_page(v: View) -> Response:
    rows, more = await v.call(server_rows, v.service("compute"), v.ctx, True, page_query(v))
    return v.render("admin_instances.html", nav="admin_instances", rows=rows,
                    **paging_values(v, rows, more))


def _system(cloud: Any, ctx: Any) -> dict[str, Any]:
    from pocketstack.policy import enforce

    enforce(ctx, "identity:list_services")  # the catalog's own admin rule
    rows = []
    for spec in cloud.specs:
        svc = cloud.services[spec.type]
        driver = getattr(svc, "driver", None)
        name = getattr(driver, "name", None) or (type(driver).__name__ if driver else "-")
        notes = [d for d in cloud.degraded if d.split(":", 1)[0] in (spec.type, spec.name)]
        rows.append({"type": spec.type, "name": spec.name, "path": spec.path,
                     "driver": name, "degraded": notes})
    return {"rows": rows, "notes": list(cloud.degraded)}


async def system_page(v: View) -> Response:
    data = await v.call(_system, v.cloud, v.ctx)
    return v.render("admin_system.html", nav="admin_system", **data)
