"""Login (password or application credential), project switch (rescope) and logout.

All three go through the identity service as ``POST/DELETE /v3/auth/tokens`` do: the
session only ever holds a project-scoped Keystone token, and logging out revokes it.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.dashboard.session import Sessions
from pocketstack.dashboard.web import View
from pocketstack.errors import PocketError


def _safe_next(target: str) -> str:
    """Only a path inside the dashboard (no open redirect to //evil or http://...)."""
    if target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard/"


async def login_form(v: View) -> Response:
    if v.session.get("token") and await v.dash.context(v.request, v.session["token"]):
        return v.redirect("/dashboard/")
    return v.render("login.html", next=_safe_next(v.request.query_params.get("next", "")),
                    domain="Default", username="", error=None)


def _password_auth(domain: str, username: str, password: str) -> dict[str, Any]:
    return {"identity": {"methods": ["password"], "password": {"user": {
        "name": username, "domain": {"name": domain}, "password": password}}}}


def _rescope_auth(token: str, project_id: str) -> dict[str, Any]:
    return {"identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"id": project_id}}}


def _login(identity: Any, auth: dict[str, Any], username: str) -> str:
    """Authenticate; end with a project-scoped token (the default project, else the
    user's project named like the user, else the first by name)."""
    info = identity.authenticate(auth)
    if info.payload.scope_kind == "project":
        return info.token
    ctx = identity.context_for(info)
    projects = sorted(identity.auth_projects(ctx), key=lambda p: p["name"])
    if not projects:
        identity.revoke(info)
        raise PocketError("You have no role on any project.", status=401)
    chosen = next((p for p in projects if p["name"] == username), projects[0])
    scoped = identity.authenticate(_rescope_auth(info.token, chosen["id"]))
    identity.revoke(info)  # the unscoped token served its purpose
    return scoped.token


async def login(v: View) -> Response:
    domain = v.field("domain", "Default").strip() or "Default"
    username = v.field("username").strip()
    nxt = _safe_next(v.field("next"))
    cred_id, cred_secret = v.field("app_cred_id").strip(), v.field("app_cred_secret")
    if cred_id:
        auth = {"identity": {"methods": ["application_credential"], "application_credential": {
            "id": cred_id, "secret": cred_secret}}}
    else:
        auth = _password_auth(domain, username, v.field("password"))
    try:
        token = await v.call(_login, v.cloud.identity, auth, username)
    except PocketError as err:
        # Keystone's own message (it never says which of user or password was wrong)
        return v.render("login.html", 401, next=nxt, domain=domain, username=username,
                        error=err.message)
    v.new_session = Sessions.new(token)  # a new CSRF secret with the new identity
    return v.redirect(nxt)


async def switch_project(v: View) -> Response:
    project_id = v.field("project_id")
    identity = v.cloud.identity

    def rescope() -> str:
        old = identity.validate(v.ctx.auth_token)
        new = identity.authenticate(_rescope_auth(v.ctx.auth_token, project_id))
        identity.revoke(old)
        return new.token

    try:
        token = await v.call(rescope)
    except PocketError as err:
        return v.render("error.html", err.status if err.status != 401 else 403,
                        title="Cannot switch project", message=err.message)
    v.new_session = Sessions.new(token)
    return v.redirect("/dashboard/")


async def logout(v: View) -> Response:
    identity = v.cloud.identity

    def revoke() -> None:
        try:
            identity.revoke(identity.validate(v.ctx.auth_token))
        except PocketError:
            pass

    await v.call(revoke)
    v.new_session = None
    return v.redirect("/dashboard/login")
