"""Console tokens (hashed, TTL, one-time), the token's way in (query, cookie), the Origin
check, resize frames, the console URLs and the request bodies' checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select

from pocketstack.db import Database, migrate
from pocketstack.errors import BadRequest
from pocketstack.services.compute import consoles
from pocketstack.services.compute.console_proxy import (cookie_token, origin_allowed,
                                                        parse_resize, request_token)
from pocketstack.services.compute.console_tokens import ConsoleToken, TokenStore, hash_token
from pocketstack.services.compute.microversions import APIVersion


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    migrate.upgrade(db)
    return TokenStore(db, ttl=600)


def issue(store, **kw):
    args = dict(server_id="s1", project_id="p1", protocol="vnc", console_type="novnc",
                host="h1")
    args.update(kw)
    return store.issue(**args)


def test_token_is_random_urlsafe_and_stored_only_as_sha256(store):
    tokens = {issue(store) for _ in range(20)}
    assert len(tokens) == 20
    for t in tokens:
        assert len(t) >= 43 and all(c.isalnum() or c in "-_" for c in t)
    with store.db.read() as s:
        rows = s.execute(select(ConsoleToken)).scalars().all()
        hashes = {r.token_hash for r in rows}
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    assert not tokens & hashes  # the plain token is nowhere in the table


def test_consume_is_one_time_and_bound_to_its_grant(store):
    t1 = issue(store, server_id="A", protocol="vnc")
    t2 = issue(store, server_id="B", protocol="serial")
    info = store.consume(t1)
    assert (info.server_id, info.project_id, info.protocol, info.host) == ("A", "p1", "vnc", "h1")
    assert store.consume(t1) is None  # reused
    assert store.peek(t1) is None
    assert store.consume(t2).server_id == "B"  # the other token was not touched by the first


def test_expired_token_is_refused_and_purged(store):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=601)
    old = issue(store, now=past)
    assert store.peek(old) is None
    assert store.consume(old) is None
    fresh = issue(store)  # issuing purges the expired rows
    with store.db.read() as s:
        assert [r.token_hash for r in s.execute(select(ConsoleToken)).scalars()] == \
            [hash_token(fresh)]


def test_ttl_edge(store):
    now = dt.datetime.now(dt.timezone.utc)
    t = issue(store, now=now)
    assert store.peek(t, now=now + dt.timedelta(seconds=599)) is not None
    assert store.consume(t, now=now + dt.timedelta(seconds=600)) is None


def test_bad_shapes_never_reach_the_database(store):
    for bad in ("", "x" * 129, "abc def", "a'b", "tok\x00", "é" * 10, None):
        assert store.consume(bad) is None
        assert store.peek(bad) is None


def test_racing_consumers_only_one_wins(store):
    t = issue(store)
    wins, barrier = [], threading.Barrier(6)

    def go():
        barrier.wait()
        wins.append(store.consume(t))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(1 for w in wins if w is not None) == 1


def test_revoke_server(store):
    a, b = issue(store, server_id="A"), issue(store, server_id="B")
    assert store.revoke_server("A") == 1
    assert store.peek(a) is None and store.peek(b) is not None


# -- where the token comes from -------------------------------------------------------------
def test_query_token_wins_over_cookie():
    assert request_token(b"token=abc", "token=zzz") == "abc"
    assert request_token(b"", "token=zzz") == "zzz"
    assert request_token(b"other=1", None) is None


def test_cookie_parsing_raw_header():
    assert cookie_token("a=1; token=abc_-9; b=2") == "abc_-9"
    assert cookie_token('token="abc"') == "abc"
    # Tempest sends the console URL's query string as the Cookie header
    assert cookie_token("path=compute%2Fconsole%2Fwebsockify%3Ftoken%3DXyZ-1_") == "XyZ-1_"
    assert cookie_token("path=%3Ftoken%3Dbadabc") == "badabc"
    # an odd cookie before it does not hide it (http.cookies would give up)
    assert cookie_token('x="unterminated; token=ok1') == "ok1"
    assert cookie_token("mytoken=no; tokens=no") is None
    assert cookie_token("") is None and cookie_token(None) is None


# -- Origin ---------------------------------------------------------------------------------
@pytest.mark.parametrize("origin,host,allowed,ok", [
    (None, "cloud:8080", [], True),  # not a browser
    ("http://cloud:8080", "cloud:8080", [], True),
    ("http://CLOUD:8080", "cloud:8080", [], True),
    ("http://cloud", "cloud:80", [], True),
    ("https://cloud", "cloud", [], False),  # 443 is not 80
    ("http://cloud:9999", "cloud:8080", [], False),  # another app on another port
    ("http://evil.example", "cloud:8080", [], False),
    ("http://dash.example", "cloud:8080", ["dash.example"], True),
    ("http://dash.example:81", "cloud:8080", ["dash.example:81"], True),
    ("http://dash.example:82", "cloud:8080", ["dash.example:81"], False),
    ("null", "cloud:8080", [], False),
    ("file://", "cloud:8080", [], False),
    ("http://[::1]:8080", "[::1]:8080", [], True),
    ("http://cloud:8080", None, [], False),
])
def test_origin_check(origin, host, allowed, ok):
    assert origin_allowed(origin, host, allowed) is ok


def test_resize_frames():
    assert parse_resize('{"resize": [80, 24]}') == (24, 80)
    for text in ('{"resize": [0, 24]}', '{"resize": [80]}', '{"resize": ["80", 24]}',
                 '{"resize": [true, 24]}', '{"resize": [80, 24], "x": 1}', "ls -l\n", "{",
                 '{"resize": [99999, 24]}', "{" + " " * 300 + "}"):
        assert parse_resize(text) is None


# -- URLs and bodies ------------------------------------------------------------------------
def test_novnc_url_names_our_websocket_in_path():
    url = consoles.console_url("http://10.0.0.5:8080", "novnc", "TOK")
    parts = urlsplit(url)
    assert parts.path == "/compute/console/novnc/vnc_lite.html"
    path = parse_qs(parts.query)["path"][0]
    assert path == "compute/console/websockify?token=TOK"
    # what Tempest does with it: GET /<path>
    assert unquote(parts.query).endswith("token=TOK")


def test_urls_keep_a_configured_prefix_and_scheme():
    url = consoles.console_url("https://c.example/cloud", "spice-html5", "T")
    assert url.startswith("https://c.example/cloud/compute/console/spice-html5/spice_auto.html?")
    assert parse_qs(urlsplit(url).query)["path"][0] == "cloud/compute/console/websockify?token=T"
    assert consoles.console_url("https://c.example/cloud", "serial", "T") == \
        "wss://c.example/cloud/compute/console/serial?token=T"
    assert consoles.console_url("http://h:1", "serial", "T") == \
        "ws://h:1/compute/console/serial?token=T"


def test_request_base_distrusts_odd_host_headers():
    assert consoles.request_base("http", "cloud:8080", "http://fallback:1") == "http://cloud:8080"
    for bad in ("evil.com/x", "a b", "x@y", "", None, "host:port", "<script>"):
        assert consoles.request_base("http", bad, "http://fallback:1/identity") == \
            "http://fallback:1"


def test_remote_console_body_by_microversion():
    v26, v28 = APIVersion(2, 6), APIVersion(2, 8)
    body = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
    assert consoles.parse_remote_console(body, v26) == ("vnc", "novnc")
    mks = {"remote_console": {"protocol": "mks", "type": "webmks"}}
    with pytest.raises(BadRequest):
        consoles.parse_remote_console(mks, v26)
    assert consoles.parse_remote_console(mks, v28) == ("mks", "webmks")
    for bad in ({}, {"remote_console": {"protocol": "vnc"}},
                {"remote_console": {"protocol": "vnc", "type": "novnc", "x": 1}},
                {"remote_console": {"protocol": "foo", "type": "novnc"}},
                {"remote_console": {"protocol": "vnc", "type": "spice-direct"}},
                {"remote_console": "vnc"}, {"remote_console": {}, "extra": 1}, []):
        with pytest.raises(BadRequest):
            consoles.parse_remote_console(bad, v28)


def test_legacy_bodies():
    assert consoles.parse_legacy("os-getVNCConsole", {"type": "novnc"}) == ("vnc", "novnc")
    assert consoles.parse_legacy("os-getVNCConsole", {"type": "xvpvnc"}) == ("vnc", "xvpvnc")
    for action, arg in (("os-getVNCConsole", {"type": "spice-html5"}),
                        ("os-getSPICEConsole", {}), ("os-getSerialConsole", None),
                        ("os-getSerialConsole", {"type": "serial", "x": 1})):
        with pytest.raises(BadRequest):
            consoles.parse_legacy(action, arg)
