"""Token bugs Tempest found (test_rescope_token, test_user_update_own_password,
test_list_projects_returns_only_authorized_projects)."""

from __future__ import annotations

import json

import pytest
from identity_fixtures import make_identity

from pocketstack.errors import NotFound, Unauthorized
from pocketstack.services.identity import users


def _password_auth(svc, name, password, scope="unscoped"):
    return svc.authenticate({"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}, "scope": scope})


@pytest.fixture
def svc(tmp_path):
    return make_identity(tmp_path)


def _admin_pw(svc):
    return json.loads((svc.settings.data_dir / "passwords.json").read_text())["admin"]


def test_rescoped_token_keeps_the_original_methods(svc):
    unscoped = _password_auth(svc, "admin", _admin_pw(svc))
    rescoped = svc.authenticate({"identity": {"methods": ["token"], "token": {
        "id": unscoped.token}}, "scope": {"project": {"name": "admin", "domain": {
            "id": "default"}}}})
    assert set(rescoped.payload.methods) == {"password", "token"}


def test_token_for_a_project_without_roles_is_401_not_404(svc):
    with pytest.raises(Unauthorized):
        _password_auth(svc, "admin", _admin_pw(svc),
                       {"project": {"name": "demo", "domain": {"id": "default"}}})


def test_password_change_kills_a_token_issued_the_same_second(svc):
    admin = svc.context_for(_password_auth(
        svc, "admin", _admin_pw(svc), {"project": {"name": "admin", "domain": {
            "id": "default"}}}))
    user = users.create_user(svc, admin, {}, {}, {"user": {"name": "sam", "password": "one"}})
    uid = user["user"]["id"]
    old = _password_auth(svc, "sam", "one")
    users.change_password(svc, admin, {"user_id": uid}, {}, {"user": {
        "password": "two", "original_password": "one"}})
    with pytest.raises(NotFound):
        svc.validate(old.token)
    fresh = _password_auth(svc, "sam", "two")  # issued right after: valid at once
    assert svc.validate(fresh.token).user["id"] == uid
