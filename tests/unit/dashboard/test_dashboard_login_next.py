"""The login's redirect target stays inside the dashboard (no open redirect)."""

from pocketstack.dashboard.auth import _safe_next


def test_only_dashboard_paths():
    assert _safe_next("/dashboard/instances?marker=x") == "/dashboard/instances?marker=x"
    for bad in ("//evil.example/dashboard", "https://evil.example/", "/identity/v3",
                "/dashboard\\..\\x", ""):
        assert _safe_next(bad) == "/dashboard/"
