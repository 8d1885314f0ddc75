"""Keystone v3 HTTP routes: parsing and rendering only; logic is in the service modules."""

from __future__ import annotations

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, Forbidden, NotFound
from pocketstack.services.identity import routes_admin, views
from pocketstack.services.identity.common import collection, reject_nul
from pocketstack.services.identity.service import IdentityService

VERSION = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def register(svc: IdentityService, r: Routes) -> None:
    base = svc.settings.base_url + "/identity"

    def version_doc() -> dict:
        return {"id": VERSION, "status": "stable", "updated": VERSION_UPDATED,
                "links": [{"rel": "self", "href": f"{base}/v3/"}], "media-types": MEDIA}

    async def versions(req: Req) -> Response:
        return json({"versions": {"values": [version_doc()]}}, 300,
                    headers={"Location": f"{base}/v3/"})

    async def version(req: Req) -> Response:
        return json({"version": version_doc()})

    # -- tokens ---------------------------------------------------------------------------
    def token_response(info, status: int, nocatalog: bool) -> Response:  # noqa: ANN001
        key = (nocatalog, svc.catalog_version)
        body = info.rendered.get(key)
        if body is None:
            scoped = info.payload.scope_kind != "unscoped"
            catalog = None if nocatalog or not scoped else svc.catalog(
                (info.project or {}).get("id"))
            doc = views.token(info, catalog)
            if catalog is not None:  # Keystone lists enabled service providers with it
                sps = svc.service_providers()
                if sps:
                    doc["token"]["service_providers"] = sps
            body = info.rendered[key] = json(doc).body
        return Response(body, status, headers={"X-Subject-Token": info.token},
                        media_type="application/json")

    async def issue_token(req: Req) -> Response:
        body = await req.json()
        reject_nul(body, "body")
        if not isinstance(body, dict) or not isinstance(body.get("auth"), dict):
            raise BadRequest("Invalid input for field 'auth': is a required property")
        info = await run(svc.authenticate, body["auth"])
        return token_response(info, 201, "nocatalog" in req.query)

    async def subject(req: Req):  # noqa: ANN202
        subject_token = req.header("x-subject-token")
        if not subject_token:
            raise NotFound("X-Subject-Token header is required.")
        reject_nul(subject_token, "X-Subject-Token header")
        allow_expired = req.query.get("allow_expired", "").lower() in ("1", "true")
        # A token validated moments ago is answered from the cache in the event loop: no
        # worker thread (a thread hop costs more than the whole cached answer).
        info = None if allow_expired else svc.cache.get(subject_token)
        if info is None:
            info = await run(svc.validate, subject_token, allow_expired=allow_expired)
        ctx = req.ctx
        # A token may always look at itself; looking at others needs admin or service.
        if subject_token != ctx.auth_token and not ctx.has_role("admin", "service") and (
                info.payload.user_id != ctx.user_id):
            raise Forbidden("You are not authorized to validate another user's token.")
        return info

    async def validate_token(req: Req) -> Response:
        info = await subject(req)
        return token_response(info, 200, "nocatalog" in req.query)

    async def check_token(req: Req) -> Response:
        info = await subject(req)
        return empty(200, headers={"X-Subject-Token": info.token})

    async def revoke_token(req: Req) -> Response:
        info = await subject(req)
        await run(svc.revoke, info)
        return empty(204)

    async def revocation_events(req: Req) -> Response:
        # Tokens die through revoked audit ids and tokens_valid_after, not events.
        return json({"events": [], "links": views.links(base, "/v3/OS-REVOKE/events")})

    async def auth_catalog(req: Req) -> Response:
        if req.ctx.project_id is None and req.ctx.domain_id is None and not req.ctx.is_system:
            raise Forbidden("The catalog needs a scoped token.")
        return json({"catalog": await run(svc.catalog, req.ctx.project_id),
                     "links": views.links(base, "/v3/auth/catalog")})

    async def auth_projects(req: Req) -> Response:
        items = await run(svc.auth_projects, req.ctx)
        return json(collection(base, "auth/projects", "projects", items))

    async def auth_domains(req: Req) -> Response:
        items = await run(svc.auth_domains, req.ctx)
        return json(collection(base, "auth/domains", "domains", items))

    async def auth_system(req: Req) -> Response:
        items = await run(svc.auth_system, req.ctx)
        return json({"system": items, "links": views.links(base, "/v3/auth/system")})

    r.get("/", versions, auth=False)
    r.get("/v3", version, auth=False)
    r.get("/v3/", version, auth=False)
    r.post("/v3/auth/tokens", issue_token, auth=False)
    r.head("/v3/auth/tokens", check_token)  # before GET, which also answers HEAD
    r.get("/v3/auth/tokens", validate_token)
    r.delete("/v3/auth/tokens", revoke_token)
    r.get("/v3/auth/catalog", auth_catalog)
    r.get("/v3/auth/projects", auth_projects)
    r.get("/v3/auth/domains", auth_domains)
    r.get("/v3/auth/system", auth_system)
    r.get("/v3/OS-REVOKE/events", revocation_events)
    routes_admin.register(svc, r)
