"""Generic volume groups through the real CLI (group types with specs, groups, group
snapshots, a group from a group snapshot) at microversion 3.14+, with the member volumes
checked through openstacksdk. Names are unique: the cloud is shared."""

from __future__ import annotations

import json
import time
import uuid

from tests.functional.volume.test_volume_cli import wait_gone

MV = ("--os-volume-api-version", "3.20")
H = {"OpenStack-API-Version": "volume 3.20"}


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def osc(cloud, *args: str) -> dict:  # noqa: ANN001
    """The CLI at microversion 3.20, its JSON output parsed."""
    return json.loads(cloud.openstack(*MV, *args, "-f", "json"))


def wait_json(conn, path: str, key: str, want: str, timeout: float = 60) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        body = conn.block_storage.get(path, headers=H).json()[key]
        if body["status"] == want:
            return body
        assert not body["status"].startswith("error"), body
        assert time.monotonic() < deadline, f"{path} stuck in {body['status']}"
        time.sleep(0.2)


def test_group_type_group_snapshot_and_group_from_snapshot(cloud):
    conn = cloud.sdk()
    vtype, gtype, grp, gsnap, grp2 = (uniq("gvt"), uniq("gtype"), uniq("grp"), uniq("gsnap"),
                                      uniq("grp2"))
    vt_id = cloud.openstack("volume", "type", "create", vtype)["id"]
    gt = osc(cloud, "volume", "group", "type", "create", gtype)
    cloud.openstack(*MV, "volume", "group", "type", "set", "--property",
                    "consistent_group_snapshot_enabled=<is> True", gtype, parse=False)
    shown = osc(cloud, "volume", "group", "type", "show", gtype)
    assert shown["Properties"] == {"consistent_group_snapshot_enabled": "<is> True"}
    g = osc(cloud, "volume", "group", "create", "--volume-group-type", gtype,
                        "--volume-type", vtype, "--name", grp)
    assert g["Group Type"] == gt["ID"] and g["Volume Types"] == [vt_id]
    demo = cloud.sdk(user="demo")  # another project's member sees none of it
    assert demo.block_storage.get(f"/groups/{g['ID']}", headers=H).status_code == 404
    assert all(x["id"] != g["ID"] for x in
               demo.block_storage.get("/groups", headers=H).json()["groups"])
    # a member volume; a volume of another type is refused
    resp = conn.block_storage.post("/volumes", headers=H, json={"volume": {
        "size": 1, "name": uniq("gvol"), "volume_type": vt_id, "group_id": g["ID"]}})
    assert resp.status_code == 202, resp.text
    vol = resp.json()["volume"]
    assert vol["group_id"] == g["ID"]
    wait_json(conn, f"/volumes/{vol['id']}", "volume", "available")
    bad = conn.block_storage.post("/volumes", headers=H, json={"volume": {
        "size": 1, "name": uniq("gvol"), "group_id": g["ID"]}})
    assert bad.status_code == 400, bad.text

    snap = osc(cloud, "volume", "group", "snapshot", "create", "--name", gsnap, grp)
    done = wait_json(conn, f"/group_snapshots/{snap['ID']}", "group_snapshot", "available")
    assert done["group_id"] == g["ID"]
    members = [s for s in conn.block_storage.get("/snapshots/detail", headers=H).json()
               ["snapshots"] if s["group_snapshot_id"] == snap["ID"]]
    assert [s["volume_id"] for s in members] == [vol["id"]]
    assert members[0]["status"] == "available"

    resp = conn.block_storage.post("/groups/action", headers=H, json={
        "create-from-src": {"group_snapshot_id": snap["ID"], "name": grp2}})
    assert resp.status_code == 202, resp.text
    g2 = resp.json()["group"]["id"]
    wait_json(conn, f"/groups/{g2}", "group", "available")
    vols2 = conn.block_storage.get(f"/volumes/detail?group_id={g2}", headers=H).json()
    assert len(vols2["volumes"]) == 1 and vols2["volumes"][0]["snapshot_id"] == members[0]["id"]

    # a group with volumes is not deleted without delete-volumes
    refused = conn.block_storage.post(f"/groups/{g2}/action", headers=H,
                                      json={"delete": {"delete-volumes": False}})
    assert refused.status_code == 400
    for gid in (g2,):
        assert conn.block_storage.post(f"/groups/{gid}/action", headers=H, json={
            "delete": {"delete-volumes": True}}).status_code == 202
    cloud.openstack(*MV, "volume", "group", "snapshot", "delete", snap["ID"], parse=False)
    deadline = time.monotonic() + 60
    while conn.block_storage.get(f"/group_snapshots/{snap['ID']}", headers=H).status_code \
            != 404:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert conn.block_storage.post(f"/groups/{g['ID']}/action", headers=H, json={
        "delete": {"delete-volumes": True}}).status_code == 202
    for gid in (g2, g["ID"]):
        deadline = time.monotonic() + 60
        while conn.block_storage.get(f"/groups/{gid}", headers=H).status_code != 404:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    wait_gone(cloud, "volume", vol["id"])
    cloud.openstack(*MV, "volume", "group", "type", "delete", gtype, parse=False)
    cloud.openstack("volume", "type", "delete", vtype, parse=False)
