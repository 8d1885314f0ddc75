"""Config drives and key pair types through the `openstack` CLI and openstacksdk on the
shared session cloud (fake compute driver). The drive is read back from the cloud's data
directory with pycdlib: label, Nova's paths, and documents that match the server's real
ports and key (tests/system/ reads it from inside guests)."""

from __future__ import annotations

import base64
import json

from tests.functional.compute.servers_common import uniq, wait

from pocketstack.drivers.compute.config_drive import read_iso

MV = "2.79"


def drive_path(cloud, sid):
    return cloud.data_dir / "compute" / "config-drives" / f"{sid}.iso"


def test_config_drive_true_through_the_cli(cloud, admin, own_image, own_net, tmp_path):
    key = uniq("cdkey")
    kp = cloud.openstack("keypair", "create", key)  # generated: the private key printed
    assert "PRIVATE KEY" in str(kp)
    pub = admin.compute.find_keypair(key).public_key
    user_data = tmp_path / "ud.sh"
    user_data.write_bytes(b"#!/bin/sh\necho config drive works\n")
    name = uniq("cdsrv")
    out = cloud.openstack("server", "create", "--image", own_image, "--flavor", "1",
                          "--network", own_net.id, "--key-name", key, "--config-drive", "true",
                          "--user-data", str(user_data), "--property", "role=web",
                          "--wait", name)
    assert out["config_drive"] == "True"
    sid = out["id"]
    label, files = read_iso(drive_path(cloud, sid))
    assert label == "config-2"
    for version in ("2012-08-10", "2018-08-27", "latest"):
        for doc in ("meta_data.json", "network_data.json", "vendor_data.json",
                    "vendor_data2.json", "user_data"):
            assert f"openstack/{version}/{doc}" in files, sorted(files)
    assert "ec2/2009-04-04/meta-data.json" in files and "ec2/latest/user-data" in files
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == sid and meta["name"] == name and meta["hostname"] == name
    assert meta["public_keys"] == {key: pub}
    assert meta["keys"] == [{"name": key, "type": "ssh", "data": pub}]
    assert meta["meta"] == {"role": "web"}
    assert files["openstack/latest/user_data"] == user_data.read_bytes()
    assert files["ec2/latest/user-data"] == user_data.read_bytes()
    (port,) = list(admin.network.ports(device_id=sid))
    netdata = json.loads(files["openstack/latest/network_data.json"])
    assert [link["ethernet_mac_address"] for link in netdata["links"]] == [port.mac_address]
    assert [n["ip_address"] for n in netdata["networks"]] == [port.fixed_ips[0]["ip_address"]]
    ec2 = json.loads(files["ec2/2009-04-04/meta-data.json"])
    assert ec2["local-ipv4"] == port.fixed_ips[0]["ip_address"] and ec2["hostname"] == name
    console = admin.compute.post(f"/servers/{sid}/action",
                                 json={"os-getConsoleOutput": {}}).json()["output"]
    assert "config drive attached (config-2)" in console
    # a server without one has none; deleting the server removes the drive
    plain = cloud.openstack("server", "create", "--image", own_image, "--flavor", "1",
                            "--network", own_net.id, "--wait", uniq("cdplain"))
    body = admin.compute.get(f"/servers/{plain['id']}", microversion=MV).json()["server"]
    assert body["config_drive"] == "" and not drive_path(cloud, plain["id"]).exists()
    cloud.openstack("server", "delete", "--wait", sid, plain["id"], parse=False)
    assert not drive_path(cloud, sid).exists()
    cloud.openstack("keypair", "delete", key, parse=False)


def test_mandatory_image_property_and_bad_values(cloud, admin, own_image, own_net):
    img = admin.image.create_image(name=uniq("cdmand"), disk_format="raw",
                                   container_format="bare", data=b"\0" * 512,
                                   img_config_drive="mandatory")
    try:
        r = admin.compute.post("/servers", json={"server": {
            "name": uniq("cdm"), "imageRef": img.id, "flavorRef": "1",
            "networks": [{"uuid": own_net.id}]}}, microversion=MV)
        assert r.status_code == 202, r.text
        srv = wait(admin, r.json()["server"]["id"], {"ACTIVE", "ERROR"})
        assert srv.status == "ACTIVE"
        body = admin.compute.get(f"/servers/{srv.id}", microversion=MV).json()["server"]
        assert body["config_drive"] == "True"
        assert read_iso(drive_path(cloud, srv.id))[0] == "config-2"
        admin.compute.delete_server(srv.id)
    finally:
        admin.image.delete_image(img.id)
    for bad in ("maybe", 3, {"a": 1}):
        r = admin.compute.post("/servers", json={"server": {
            "name": uniq("cdbad"), "imageRef": own_image, "flavorRef": "1",
            "networks": [{"uuid": own_net.id}], "config_drive": bad}}, microversion=MV)
        assert r.status_code == 400, r.text
    assert not [s for s in admin.compute.servers() if s.name.startswith("cdbad")]


CERT_SUBJECT = "pocketstack-test"


def _self_signed_cert() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_SUBJECT)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_keypair_types_and_bad_keys(cloud, admin, demo, own_image, own_net):
    import hashlib

    from cryptography import x509

    pem = _self_signed_cert()
    name = uniq("x509")
    r = admin.compute.post("/os-keypairs", json={"keypair": {
        "name": name, "type": "x509", "public_key": pem}}, microversion="2.2")
    assert r.status_code == 201, r.text  # 2.2+: 201 Created
    kp = r.json()["keypair"]
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    sha1 = hashlib.sha1(der).hexdigest()
    assert kp["type"] == "x509" and kp["fingerprint"] == ":".join(
        sha1[i:i + 2] for i in range(0, 40, 2))
    shown = admin.compute.get(f"/os-keypairs/{name}", microversion="2.2").json()["keypair"]
    assert shown["type"] == "x509" and shown["public_key"] == pem.strip()
    # generated x509: a private key and a certificate come back (before 2.92, as Nova)
    gen = admin.compute.post("/os-keypairs", json={"keypair": {
        "name": uniq("x509gen"), "type": "x509"}}, microversion="2.2").json()["keypair"]
    assert "PRIVATE KEY" in gen["private_key"]
    x509.load_pem_x509_certificate(gen["public_key"].encode())
    # malformed keys: 400, nothing stored
    for body in ({"type": "x509", "public_key": "-----BEGIN CERTIFICATE-----\nnope\n"},
                 {"type": "ssh", "public_key": "ssh-rsa AAAAnotakey"},
                 {"type": "x509", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"},
                 {"type": "rsa", "public_key": pem}):
            bad = uniq("bad")
            r = admin.compute.post("/os-keypairs", json={"keypair": {"name": bad, **body}},
                                   microversion="2.2")
            assert r.status_code == 400, (body, r.text)
            assert admin.compute.find_keypair(bad) is None
    res = cloud.openstack("keypair", "create", "--public-key", "/dev/null", uniq("empty"),
                          check=False)
    assert res.returncode != 0
    # a server with an x509 key shows it as such in its metadata (config drive)
    r = admin.compute.post("/servers", json={"server": {
        "name": uniq("cdx"), "imageRef": own_image, "flavorRef": "1", "key_name": name,
        "networks": [{"uuid": own_net.id}], "config_drive": True}}, microversion=MV)
    assert r.status_code == 202, r.text
    srv = wait(admin, r.json()["server"]["id"], {"ACTIVE"})
    meta = json.loads(read_iso(drive_path(cloud, srv.id))[1]["openstack/latest/meta_data.json"])
    assert meta["keys"] == [{"name": name, "type": "x509", "data": pem.strip()}]
    admin.compute.delete_server(srv.id)
    # unknown or another user's key name: 400 "Invalid key_name provided.", no server
    for conn, key in ((admin, uniq("nokey")), (demo, name)):
        sname = uniq("cdnokey")
        r = conn.compute.post("/servers", json={"server": {
            "name": sname, "imageRef": own_image, "flavorRef": "1", "key_name": key,
            "networks": "none"}}, microversion=MV)
        assert r.status_code == 400 and "Invalid key_name provided." in r.text, r.text
        assert not [s for s in conn.compute.servers() if s.name == sname]
    admin.compute.delete_keypair(name)
    admin.compute.delete_keypair(gen["name"])


def test_tagged_devices_are_in_meta_data(cloud, admin, own_image, own_net):
    """Device role tagging (2.32 NICs, 2.42 block devices) as Nova shows it in
    meta_data.json devices: tagged ones only, NICs by MAC, disks by volume id."""
    r = admin.compute.post("/servers", json={"server": {
        "name": uniq("cdtag"), "imageRef": own_image, "flavorRef": "1", "config_drive": True,
        "networks": [{"uuid": own_net.id, "tag": "nic-a"}, {"uuid": own_net.id}],
        "block_device_mapping_v2": [
            {"boot_index": 0, "uuid": own_image, "source_type": "image",
             "destination_type": "local"},
            {"boot_index": -1, "source_type": "blank", "destination_type": "volume",
             "volume_size": 1, "tag": "data", "delete_on_termination": True}]}},
        microversion=MV)
    assert r.status_code == 202, r.text
    srv = wait(admin, r.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert srv.status == "ACTIVE", srv.fault
    meta = json.loads(read_iso(drive_path(cloud, srv.id))[1]["openstack/latest/meta_data.json"])
    ports = list(admin.network.ports(device_id=srv.id))
    tagged = {d["mac"]: d["tags"] for d in meta["devices"] if d["type"] == "nic"}
    assert len(ports) == 2 and len(tagged) == 1
    (mac,) = tagged
    assert tagged[mac] == ["nic-a"] and mac in {p.mac_address for p in ports}
    body = admin.compute.get(f"/servers/{srv.id}", microversion=MV).json()["server"]
    (vol,) = [v["id"] for v in body["os-extended-volumes:volumes_attached"]]
    disks = [d for d in meta["devices"] if d["type"] == "disk"]
    assert disks == [{"type": "disk", "bus": "virtio", "serial": vol, "tags": ["data"]}]
    admin.compute.delete_server(srv.id)


def test_personality_files_reach_the_config_drive(cloud, admin, own_image, own_net):
    """Injected files (before 2.57) as Nova hands them to the guest: meta_data.json files
    [{path, content_path}] and openstack/content/NNNN; quota and base64 errors change
    nothing."""
    files = [{"path": "/etc/motd", "contents": base64.b64encode(b"hello\n").decode()},
             {"path": "/../../etc/shadow; rm -rf /",
              "contents": base64.b64encode(b"\0\xffbinary").decode()}]
    r = admin.compute.post("/servers", json={"server": {
        "name": uniq("cdpers"), "imageRef": own_image, "flavorRef": "1", "config_drive": True,
        "networks": [{"uuid": own_net.id}], "personality": files}}, microversion="2.56")
    assert r.status_code == 202, r.text
    srv = wait(admin, r.json()["server"]["id"], {"ACTIVE"})
    got = read_iso(drive_path(cloud, srv.id))[1]
    meta = json.loads(got["openstack/latest/meta_data.json"])
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"},
                             {"path": files[1]["path"], "content_path": "/content/0001"}]
    assert got["openstack/content/0000"] == b"hello\n"
    assert got["openstack/content/0001"] == b"\0\xffbinary"
    admin.compute.delete_server(srv.id)
    for bad, status in (([{"path": "/x", "contents": "not base64!"}], 400),
                        ([{"path": "/x", "contents": base64.b64encode(b"x" * 10241).decode()}],
                         403),
                        ([{"path": "/" + "p" * 300, "contents": ""}], 403),
                        ([{"path": "/x", "contents": ""}] * 6, 403)):
        name = uniq("cdpbad")
        r = admin.compute.post("/servers", json={"server": {
            "name": name, "imageRef": own_image, "flavorRef": "1", "networks": "none",
            "personality": bad}}, microversion="2.56")
        assert r.status_code == status, (bad[0]["path"][:20], r.text)
        assert not [s for s in admin.compute.servers() if s.name == name]
    # 2.57 removed personality: a 400
    r = admin.compute.post("/servers", json={"server": {
        "name": uniq("cdp57"), "imageRef": own_image, "flavorRef": "1", "networks": "none",
        "personality": files}}, microversion="2.57")
    assert r.status_code == 400, r.text
