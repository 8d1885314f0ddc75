"""The dashboard's security promises, black-box against the live cloud with httpx: CSRF on
every POST, project scoping (another project's instance is 404), policy (a member gets 403
on admin pages), escaping, cookie flags and headers, logout revoking the token."""

from __future__ import annotations

import uuid

import httpx

from tests.functional.dashboard.conftest import csrf_of, login


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _server_names(conn) -> set[str]:
    return {s.name for s in conn.compute.servers()}


def _boot(conn, name: str) -> str:
    image = conn.image.find_image("busybox", ignore_missing=False)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    srv = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                     networks="none")
    return srv.id


def test_session_cookie_flags_and_security_headers(cloud):
    c = httpx.Client(base_url=cloud.base_url, follow_redirects=False)
    r = c.get("/dashboard/login")
    r = c.post("/dashboard/login", data={"csrf_token": csrf_of(r.text), "domain": "Default",
                                         "username": "demo", "password": cloud.password("demo")})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/dashboard" in flags
    page = c.get("/dashboard/instances")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script anywhere (only <script src=...>)
    assert page.headers["x-frame-options"] == "DENY"


def test_post_without_csrf_token_is_refused_and_changes_nothing(cloud, demo_web):
    demo = cloud.sdk("demo")
    before = _server_names(demo)
    form = demo_web.get("/dashboard/instances/launch")
    image = demo.image.find_image("busybox", ignore_missing=False).id
    name = uniq("csrf")
    body = {"name": name, "image": image, "flavor": "1", "count": "1"}
    r = demo_web.post("/dashboard/instances/launch", data=body)
    assert r.status_code == 403
    r = demo_web.post("/dashboard/instances/launch", data={**body, "csrf_token": "forged"})
    assert r.status_code == 403
    assert _server_names(demo) == before
    # the same form with the page's token does launch (the refusal was the token's)
    r = demo_web.post("/dashboard/instances/launch",
                      data={**body, "csrf_token": csrf_of(form.text)})
    assert r.status_code == 303, r.text[:1000]
    made = [s for s in demo.compute.servers() if s.name == name]
    assert len(made) == 1
    demo.compute.delete_server(made[0].id)  # the shared cloud's other modules count servers


def test_login_form_needs_the_csrf_token_too(cloud):
    c = httpx.Client(base_url=cloud.base_url, follow_redirects=False)
    r = c.post("/dashboard/login", data={"domain": "Default", "username": "demo",
                                         "password": cloud.password("demo")})
    assert r.status_code == 403


def test_another_projects_instance_is_404(cloud, demo_web):
    admin = cloud.sdk()
    sid = _boot(admin, uniq("other"))
    try:
        r = demo_web.get(f"/dashboard/instances/{sid}")
        assert r.status_code == 404
        assert sid in r.text  # Nova's own message, "Instance <id> could not be found."
        csrf = csrf_of(demo_web.get("/dashboard/instances").text)
        r = demo_web.post(f"/dashboard/instances/{sid}/delete", data={"csrf_token": csrf})
        assert r.status_code == 404
        assert admin.compute.get_server(sid).id == sid  # still there
    finally:
        admin.compute.delete_server(sid)


def test_member_gets_403_on_admin_pages(demo_web, admin_web):
    for path in ("/dashboard/admin/services", "/dashboard/admin/flavors",
                 "/dashboard/admin/hypervisors", "/dashboard/admin/instances",
                 "/dashboard/admin/system"):
        assert demo_web.get(path).status_code == 403, path
        assert admin_web.get(path).status_code == 200, path
    csrf = csrf_of(demo_web.get("/dashboard/").text)
    r = demo_web.post("/dashboard/admin/flavors", data={
        "csrf_token": csrf, "name": uniq("evil"), "vcpus": "1", "ram": "64", "disk": "0"})
    assert r.status_code == 403
    assert "/dashboard/admin/" not in demo_web.get("/dashboard/").text  # no admin nav


def test_server_names_are_escaped(cloud, demo_web):
    demo = cloud.sdk("demo")
    name = "<script>alert(1)</script>"
    sid = _boot(demo, name)
    try:
        for path in ("/dashboard/instances", f"/dashboard/instances/{sid}",
                     "/dashboard/instances/table"):
            text = demo_web.get(path).text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
            assert name not in text, path
    finally:
        demo.compute.delete_server(sid)


def test_launch_form_shows_the_api_fault_verbatim(cloud, demo_web):
    form = demo_web.get("/dashboard/instances/launch")
    image = cloud.sdk("demo").image.find_image("busybox", ignore_missing=False).id
    r = demo_web.post("/dashboard/instances/launch", data={
        "csrf_token": csrf_of(form.text), "name": uniq("bad"), "image": image,
        "flavor": "no-such-flavor", "count": "1"})
    assert r.status_code == 400
    # what Nova says: "Flavor no-such-flavor could not be found." (a 400 at create)
    assert "Flavor no-such-flavor could not be found" in r.text


def test_browser_at_root_is_sent_to_the_dashboard_api_clients_are_not(cloud):
    c = httpx.Client(base_url=cloud.base_url, follow_redirects=False)
    r = c.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 302 and r.headers["location"] == "/dashboard/"
    assert c.get("/", headers={"accept": "application/json"}).json()["pocketstack"]
    assert c.get("/").json()["pocketstack"]
    r = c.get("/dashboard/instances")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")


def test_logout_revokes_the_token(cloud):
    c = login(cloud, "demo")
    cookie = c.cookies.get("pocketstack_dashboard")
    assert c.get("/dashboard/instances").status_code == 200
    csrf = csrf_of(c.get("/dashboard/").text)
    r = c.post("/dashboard/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    # the old cookie (a copy an attacker kept) no longer works: the token is revoked
    thief = httpx.Client(base_url=cloud.base_url, follow_redirects=False,
                         cookies={"pocketstack_dashboard": cookie})
    r = thief.get("/dashboard/instances")
    assert r.status_code == 303 and "/dashboard/login" in r.headers["location"]


def test_wrong_password_is_401_with_keystones_message(cloud):
    c = httpx.Client(base_url=cloud.base_url, follow_redirects=False)
    r = c.get("/dashboard/login")
    r = c.post("/dashboard/login", data={"csrf_token": csrf_of(r.text), "domain": "Default",
                                         "username": "demo", "password": "wrong"})
    assert r.status_code == 401
    assert 'id="login-error"' in r.text and "pocketstack_dashboard=" not in \
        r.headers.get("set-cookie", "").replace("pocketstack_dashboard=;", "")


def test_switch_project_rescopes_and_refuses_foreign_projects(cloud):
    admin = cloud.sdk()
    pname = uniq("proj")
    project = admin.identity.create_project(name=pname, domain_id="default")
    foreign = admin.identity.create_project(name=uniq("foreign"), domain_id="default")
    user = admin.identity.find_user("demo", domain_id="default")
    member = admin.identity.find_role("member")
    admin.identity.assign_project_role_to_user(project, user, member)
    try:
        c = login(cloud, "demo")
        page = c.get("/dashboard/")
        assert pname in page.text  # offered by the switcher
        r = c.post("/dashboard/switch", data={"csrf_token": csrf_of(page.text),
                                              "project_id": project.id})
        assert r.status_code == 303
        page = c.get("/dashboard/")
        assert f"<small>{pname}</small>" in page.text
        r = c.post("/dashboard/switch", data={"csrf_token": csrf_of(page.text),
                                              "project_id": foreign.id})
        assert r.status_code == 403
        assert f"<small>{pname}</small>" in c.get("/dashboard/").text  # still there
    finally:
        admin.identity.delete_project(project)
        admin.identity.delete_project(foreign)


def test_overview_shows_quota_usage(cloud, demo_web):
    text = demo_web.get("/dashboard/").text
    for label in ("Instances", "vCPUs", "RAM", "Volumes", "Volume storage", "Floating IPs",
                  "Security groups"):
        assert f'data-resource="{label}"' in text


def test_streamed_image_upload_needs_the_csrf_header(cloud, demo_web):
    page = demo_web.get("/dashboard/images")
    csrf = csrf_of(page.text)
    r = demo_web.post("/dashboard/images/create", data={
        "csrf_token": csrf, "name": uniq("img"), "disk_format": "raw",
        "container_format": "bare", "visibility": "private"})
    assert r.status_code == 201
    image_id = r.json()["id"]
    demo = cloud.sdk("demo")
    data = b"pocketstack" * 1000
    r = demo_web.put(f"/dashboard/images/{image_id}/file", content=data,
                     headers={"content-type": "application/octet-stream"})
    assert r.status_code == 403
    assert demo.image.get_image(image_id).status == "queued"  # nothing stored
    r = demo_web.put(f"/dashboard/images/{image_id}/file", content=data,
                     headers={"content-type": "application/octet-stream",
                              "x-csrf-token": csrf})
    assert r.status_code == 204, r.text
    img = demo.image.get_image(image_id)
    assert img.status == "active" and img.size == len(data)
    demo.image.delete_image(image_id)


def test_keypair_import_and_refusal_shown(cloud, demo_web):
    csrf = csrf_of(demo_web.get("/dashboard/keypairs").text)
    name = uniq("imported")
    r = demo_web.post("/dashboard/keypairs/create", data={
        "csrf_token": csrf, "name": name, "public_key": "not a key"})
    assert r.status_code == 400 and 'id="keypair-error"' in r.text
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = demo_web.post("/dashboard/keypairs/create", data={
        "csrf_token": csrf, "name": name, "public_key": pub})
    assert r.status_code == 303
    demo = cloud.sdk("demo")
    assert demo.compute.get_keypair(name).public_key == pub
    r = demo_web.post(f"/dashboard/keypairs/{name}/delete", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert demo.compute.find_keypair(name) is None


def test_task_panel_shows_the_projects_recent_operations(cloud, demo_web, admin_web):
    demo = cloud.sdk("demo")
    name = uniq("task")
    sid = _boot(demo, name)
    try:
        panel = demo_web.get("/dashboard/").text.split('id="task-panel"', 1)[1]
        assert f"create {name}" in panel
        # another project's panel does not show it
        assert name not in admin_web.get("/dashboard/").text.split('id="task-panel"', 1)[1]
    finally:
        demo.compute.delete_server(sid)


def test_system_page_lists_every_service_and_its_driver(admin_web):
    text = admin_web.get("/dashboard/admin/system").text
    for service in ("keystone", "nova", "neutron", "cinder", "glance"):
        assert f"<td>{service}</td>" in text
    assert "<td>fake</td>" in text  # the functional cloud runs the fake compute driver
