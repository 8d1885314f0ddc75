"""POST /servers/{id}/action shelve, shelveOffload, unshelve (nova api-ref
servers-action-shelve.inc): state checks, intent, task. worker_shelve.py does the work."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict
from pocketstack.services.compute import actions
from pocketstack.services.compute.models import Host

SHELVABLE = ("active", "stopped", "paused", "suspended")  # Nova's check_instance_state


def shelve(acts: Any, ctx: RequestContext, server_id: str) -> None:
    """Image-backed: a queued image ``<name>-shelved`` now (Nova's API creates it before
    casting), its data from the worker; volume-backed: no image, offloaded at once."""
    svc = acts.svc
    with svc.db.read() as s:
        srv = svc.servers.load(s, ctx, server_id, "compute:server_shelve")
        svc.servers.check_lock(ctx, srv)
        if srv.vm_state not in SHELVABLE or srv.task_state is not None:
            raise acts._conflict(srv, "shelve")
    image_id = None
    images = svc.cloud.services.get("image")
    if srv.image_id and not (srv.image or {}).get("volume_backed") and images is not None:
        # Nova's snapshot metadata: the base image's properties, then its own keys.
        props = {k: v for k, v in (srv.image or {}).get("properties", {}).items()
                 if isinstance(v, str) and not k.startswith("pocketstack")
                 and k != "description"}
        props.update({"image_type": "snapshot", "instance_uuid": srv.id,
                      "base_image_ref": srv.image_id, "user_id": ctx.user_id or srv.user_id})
        image = images.create_image_placeholder(
            ctx, name=f"{srv.name}-shelved",
            disk_format=(srv.image or {}).get("disk_format") or "raw",
            container_format=(srv.image or {}).get("container_format") or "bare",
            properties=props)
        image_id = image["id"]
    try:
        with svc.db.write() as s:
            srv = svc.servers.load(s, ctx, server_id, "compute:server_shelve")
            svc.servers.check_lock(ctx, srv)
            if srv.vm_state not in SHELVABLE or srv.task_state is not None:
                raise acts._conflict(srv, "shelve")
            actions.record(s, srv, "shelve", ctx)
            if image_id is None:  # volume-backed: straight to the offload (as Nova)
                srv.task_state = "shelving_offloading"
                svc.queue.enqueue(s, "shelve_offload", srv.id, {"action": "shelve"})
            else:
                srv.task_state = "shelving"
                svc.queue.enqueue(s, "shelve", srv.id, {"action": "shelve",
                                                        "image_id": image_id,
                                                        "vm_state": srv.vm_state})
            srv.updated_at = utcnow()
    except BaseException:
        if image_id is not None:
            from pocketstack.services.image import images as image_api

            image_api.remove(images, RequestContext.internal(), image_id)
        raise
    svc.queue.kick()


def shelve_offload(acts: Any, ctx: RequestContext, server_id: str) -> None:
    acts._begin(ctx, server_id, "shelveOffload", ("shelved",), "shelving_offloading",
                "shelve_offload", "shelveOffload")


def _unshelve_args(ctx: RequestContext, arg: Any, ver: Any) -> dict[str, Any]:
    """The body by microversion: before 2.77 null (anything else is ignored, as Nova's
    schema-less handler did); 2.77 {"availability_zone": name}; 2.91 also
    {"availability_zone": null} (unpin) and {"host": name} (admin)."""
    if not ver.at_least(2, 77) or arg is None:
        return {}
    allowed = {"availability_zone"} | ({"host"} if ver.at_least(2, 91) else set())
    if not isinstance(arg, dict) or set(arg) - allowed or not arg:
        extra = sorted(set(arg) - allowed) if isinstance(arg, dict) else []
        raise BadRequest("Invalid input for field/attribute unshelve. Additional properties "
                         f"are not allowed ({', '.join(repr(e) for e in extra)} were "
                         "unexpected)" if extra else
                         "Invalid input for field/attribute unshelve.")
    out: dict[str, Any] = {}
    if "availability_zone" in arg:
        az = arg["availability_zone"]
        if az is None:
            if not ver.at_least(2, 91):
                raise BadRequest("Invalid input for field/attribute availability_zone. "
                                 "Value: None. None is not of type 'string'")
            out["unpin_az"] = True
        elif not isinstance(az, str) or not 1 <= len(az) <= 255:
            raise BadRequest("Invalid input for field/attribute availability_zone.")
        else:
            out["availability_zone"] = az
    if "host" in arg:
        policy.enforce(ctx, "compute:server_unshelve_to_host")
        if not isinstance(arg["host"], str) or not 1 <= len(arg["host"]) <= 255:
            raise BadRequest("Invalid input for field/attribute host.")
        out["host"] = arg["host"]
    return out


def unshelve(acts: Any, ctx: RequestContext, server_id: str, arg: Any, ver: Any) -> None:
    svc = acts.svc
    args = _unshelve_args(ctx, arg, ver)
    with svc.db.write() as s:
        srv = svc.servers.load(s, ctx, server_id, "compute:server_unshelve")
        svc.servers.check_lock(ctx, srv)
        if srv.vm_state not in ("shelved", "shelved_offloaded") or srv.task_state is not None:
            raise acts._conflict(srv, "unshelve")
        if args and srv.vm_state != "shelved_offloaded":
            # nova/compute/api.py: an AZ or host only moves an offloaded server
            raise Conflict(f"The unshelve action with an availability zone or host needs "
                           f"instance {srv.id} in vm_state shelved_offloaded, not "
                           f"{srv.vm_state}.")
        hosts = {h.host: h for h in s.execute(select(Host)).scalars()}
        if "host" in args and args["host"] not in hosts:
            raise BadRequest(f"Compute host {args['host']} could not be found.")
        az = args.get("availability_zone")
        if az is not None:
            zones = set(svc.host_azs(s).values())
            if len(zones) < len(hosts):  # a host in no aggregate's zone is in the default
                zones.add(svc.conf.default_availability_zone)
            if az not in zones:
                raise BadRequest("The requested availability zone is not available")
        srv.task_state = "unshelving"
        srv.updated_at = utcnow()
        actions.record(s, srv, "unshelve", ctx)
        svc.queue.enqueue(s, "unshelve", srv.id, {"action": "unshelve", **args})
    svc.queue.kick()
