"""Admin pages through the dashboard (httpx, live cloud): projects with usage and the quota
form (Nova's quota code: the new limit is what the API shows), refused to a member."""

from __future__ import annotations

import uuid

from tests.functional.dashboard.conftest import csrf_of


def test_admin_sets_a_projects_instance_quota(cloud, admin_web, demo_web):
    admin = cloud.sdk()
    project = admin.identity.create_project(name=f"ps-dash-q-{uuid.uuid4().hex[:6]}",
                                            domain_id="default")
    try:
        page = admin_web.get("/dashboard/admin/projects")
        assert page.status_code == 200 and f'data-name="{project.name}"' in page.text
        r = admin_web.post(f"/dashboard/admin/projects/{project.id}/quota", data={
            "csrf_token": csrf_of(page.text), "instances": "7", "cores": "", "ram": ""})
        assert r.status_code == 303
        assert admin.compute.get_quota_set(project.id).instances == 7
        row = admin_web.get("/dashboard/admin/projects").text.split(
            f'data-name="{project.name}"', 1)[1].split("</tr>", 1)[0]
        assert "0/7" in row
        r = admin_web.post(f"/dashboard/admin/projects/{project.id}/quota", data={
            "csrf_token": csrf_of(page.text), "instances": "seven"})
        assert r.status_code == 400 and 'id="quota-error"' in r.text
        # a member can neither see the page nor post the form
        assert demo_web.get("/dashboard/admin/projects").status_code == 403
        csrf = csrf_of(demo_web.get("/dashboard/").text)
        r = demo_web.post(f"/dashboard/admin/projects/{project.id}/quota",
                          data={"csrf_token": csrf, "instances": "1000"})
        assert r.status_code == 403
        assert admin.compute.get_quota_set(project.id).instances == 7
    finally:
        admin.identity.delete_project(project)
