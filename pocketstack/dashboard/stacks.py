"""Orchestration: stack list, launch from a template (text, or a file the browser reads into
the text box) with a parameters form generated from the template's own parameters and
constraints (Heat's template-validate answer), the stack page (resources, events, outputs),
delete. All through the orchestration service as the Heat API routes call it."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY
from pocketstack.dashboard.web import View
from pocketstack.errors import PocketError

MAX_TEMPLATE = 512 * 1024  # a form field; Heat's own max_template_size is 512 KiB


def stack_rows(cloud: Any, ctx: Any) -> list[dict[str, Any]]:
    rows = cloud.services["orchestration"].list_stacks(ctx, NO_QUERY)
    return [{"id": st.id, "name": st.name, "status": f"{st.action}_{st.status}",
             "reason": st.status_reason, "created": st.created_at} for st in rows]


async def stacks_page(v: View) -> Response:
    rows = await v.call(stack_rows, v.cloud, v.ctx)
    busy = any(r["status"].endswith("IN_PROGRESS") for r in rows)
    return v.render("stacks.html", nav="stacks", rows=rows, polling=busy)


async def launch_form(v: View) -> Response:
    return v.render("stack_launch.html", nav="stacks", step="template", template="", name="",
                    params=[], error=None)


def parameters_of(validated: dict[str, Any]) -> list[dict[str, Any]]:
    """The form's fields from Heat's validate answer (Type, Default, Description, Label,
    NoEcho, AllowedValues, MinValue/MaxValue, MinLength/MaxLength)."""
    out = []
    for name, p in (validated.get("Parameters") or {}).items():
        default = p.get("Default")
        out.append({
            "name": name, "type": p.get("Type", "String"),
            "label": p.get("Label") or name, "description": p.get("Description") or "",
            "default": "" if default is None else str(default),
            "hidden": str(p.get("NoEcho", "false")).lower() == "true",
            "allowed": [str(a) for a in p.get("AllowedValues") or []],
            "min": p.get("MinValue"), "max": p.get("MaxValue"),
        })
    return out


async def launch(v: View) -> Response:
    """Step 1 (step=template): validate, show the parameters form. Step 2 (step=params):
    create the stack with the values given."""
    svc = v.service("orchestration")
    template, name = v.field("template"), v.field("stack_name").strip()
    step = v.field("step", "template")
    values = {"step": step, "template": template, "name": name}
    try:
        if len(template.encode()) > MAX_TEMPLATE:
            raise PocketError(f"The template is larger than {MAX_TEMPLATE} bytes.", status=413)
        validated = await v.call(svc.validate, v.ctx, {"template": template}, False, None)
        params = parameters_of(validated)
        if step == "template":
            return v.render("stack_launch.html", nav="stacks", params=params, error=None,
                            **{**values, "step": "params"})
        given = {p["name"]: v.field(f"param_{p['name']}") for p in params
                 if v.field(f"param_{p['name']}") != ""}  # blank: the template's default
        await v.call(svc.create_stack, v.ctx, {"stack_name": name, "template": template,
                                               "parameters": given})
    except PocketError as err:
        try:
            params = parameters_of(await v.call(svc.validate, v.ctx, {"template": template},
                                                False, None))
        except PocketError:
            params, values["step"] = [], "template"
        return v.render("stack_launch.html", err.status, nav="stacks", params=params,
                        error={"code": err.status, "message": err.message}, **values)
    return v.redirect("/dashboard/stacks")


def stack_detail(cloud: Any, ctx: Any, stack_id: str) -> dict[str, Any]:
    svc = cloud.services["orchestration"]
    st = svc.find(ctx, stack_id)  # another project's stack is not found
    resources = [{"name": r.name, "type": r.type, "status": f"{r.action}_{r.status}",
                  "reason": r.status_reason, "physical_id": r.physical_resource_id}
                 for _, r, _ in svc.resources(ctx, st)]
    events = [{"resource": e.resource_name, "status": f"{e.action}_{e.status}",
               "reason": e.reason, "time": e.created_at}
              for _, e in svc.events(ctx, st, None, NO_QUERY)]
    outputs = svc.outputs(ctx, st) if st.deleted_at is None else []
    return {"stack": {"id": st.id, "name": st.name, "status": f"{st.action}_{st.status}",
                      "reason": st.status_reason},
            "resources": resources, "events": events[-50:], "outputs": outputs,
            "polling": st.status == "IN_PROGRESS"}


async def stack_page(v: View) -> Response:
    data = await v.call(stack_detail, v.cloud, v.ctx, v.params["stack_id"])
    return v.render("stack.html", nav="stacks", **data)


async def stack_delete(v: View) -> Response:
    svc = v.service("orchestration")

    def delete() -> None:
        svc.delete_stack(v.ctx, svc.find(v.ctx, v.params["stack_id"]))

    await v.call(delete)
    return v.redirect("/dashboard/stacks")
