"""The dashboard session: the secret file, signing, CSRF comparison, cookie flags."""

from __future__ import annotations

import os
import stat
import threading

from pocketstack.dashboard.session import COOKIE, Sessions, csrf_ok, load_secret


def test_secret_is_created_once_private_and_reused(tmp_path):
    first = load_secret(tmp_path)
    assert len(first) == 32
    mode = stat.S_IMODE(os.stat(tmp_path / "dashboard-secret").st_mode)
    assert mode == 0o600
    assert load_secret(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard-secret"]  # no temp left


def test_racing_first_starts_agree_on_one_secret(tmp_path):
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(load_secret(tmp_path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8


def test_tampered_or_foreign_cookie_is_no_session(tmp_path):
    sessions = Sessions(load_secret(tmp_path))
    header = sessions.cookie_header(Sessions.new("tok"), secure=False)
    value = header.split(";")[0].split("=", 1)[1]
    assert sessions.read(value)["token"] == "tok"
    assert sessions.read(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None
    other = Sessions(os.urandom(32))
    assert other.read(value) is None
    assert sessions.read(None) is None and sessions.read("garbage") is None


def test_cookie_flags_and_clearing(tmp_path):
    sessions = Sessions(load_secret(tmp_path))
    header = sessions.cookie_header(Sessions.new(), secure=True)
    assert header.startswith(COOKIE + "=")
    for flag in ("Path=/dashboard", "HttpOnly", "SameSite=Strict", "Secure"):
        assert flag in header
    assert "Secure" not in sessions.cookie_header(Sessions.new(), secure=False)
    assert "Max-Age=0" in sessions.cookie_header(None, secure=False)


def test_csrf_comparison():
    s = Sessions.new()
    assert csrf_ok(s, s["csrf"])
    assert not csrf_ok(s, s["csrf"] + "x")
    assert not csrf_ok(s, "")
    assert not csrf_ok(None, s["csrf"])
    assert Sessions.new()["csrf"] != s["csrf"]
