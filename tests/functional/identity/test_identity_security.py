"""Security compliance on a cloud of its own: lockout, password history, token revocation
on password change (through the real CLI's `openstack user password set`)."""

from __future__ import annotations

import time

import pytest
from tests.conftest import LiveCloud
from identity_helpers import Keystone, unique


@pytest.fixture(scope="module")
def strict_cloud(tmp_path_factory):
    data = tmp_path_factory.mktemp("ps-identity-strict") / "data"
    data.mkdir(parents=True)
    (data / "pocketstack.toml").write_text(
        "[identity]\nlockout_failure_attempts = 2\nlockout_duration = 2\n"
        "unique_last_password_count = 2\n")
    live = LiveCloud(data).start()
    yield live
    live.stop()


def test_lockout_then_unlock(strict_cloud):
    ks = Keystone(strict_cloud)
    admin = ks.admin_token()
    proj, user = unique("lock-p"), unique("lock-u")
    pid, uid = ks.make_member(admin, proj, user, "right-pass-1")
    for _ in range(2):
        assert ks.token(user, "wrong-pass", proj)[0] == 401
    locked = ks.token(user, "right-pass-1", proj)
    wrong = ks.token(user, "wrong-pass", proj)
    assert locked[0] == wrong[0] == 401 and locked[2] == wrong[2]  # no account probing
    time.sleep(2.2)
    assert ks.token(user, "right-pass-1", proj)[0] == 201
    ks.call("DELETE", f"/users/{uid}", admin)
    ks.call("DELETE", f"/projects/{pid}", admin)


def test_password_change_history_and_revocation(strict_cloud):
    ks = Keystone(strict_cloud)
    admin = ks.admin_token()
    proj, user = unique("pw-p"), unique("pw-u")
    pid, uid = ks.make_member(admin, proj, user, "first-pass-1")
    status, old_token, _ = ks.token(user, "first-pass-1", proj)
    assert status == 201
    strict_cloud.openstack("user", "password", "set", "--password", "second-pass-2",
                           "--original-password", "first-pass-1", user=user, project=proj,
                           password="first-pass-1", parse=False)
    # the old token died at once; a token from the new password works right away
    r = ks.call("GET", "/auth/tokens", admin, headers={"X-Subject-Token": old_token})
    assert r.status_code == 404
    status, new_token, _ = ks.token(user, "second-pass-2", proj)
    assert status == 201
    assert ks.call("GET", "/auth/tokens", admin,
                   headers={"X-Subject-Token": new_token}).status_code == 200
    # the previous password cannot come back (unique_last_password_count = 2)
    r = ks.call("POST", f"/users/{uid}/password", None, {"user": {
        "password": "first-pass-1", "original_password": "second-pass-2"}})
    assert r.status_code == 400 and "previous password" in r.json()["error"]["message"]
    # a wrong original password is refused and changes nothing
    r = ks.call("POST", f"/users/{uid}/password", None, {"user": {
        "password": "third-pass-3", "original_password": "nope"}})
    assert r.status_code == 401
    assert ks.token(user, "second-pass-2", proj)[0] == 201  # (and resets the failure count)
    assert ks.token(user, "first-pass-1", proj)[0] == 401
    ks.call("DELETE", f"/users/{uid}", admin)
    ks.call("DELETE", f"/projects/{pid}", admin)
