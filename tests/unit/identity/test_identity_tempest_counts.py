"""scripts/tempest's counting: the one line every slice reports its Tempest results with."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "tempest"


def load():
    loader = importlib.machinery.SourceFileLoader("pocketstack_tempest_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_counts_with_a_regex_and_with_a_list():
    m = load()
    results = {
        "tempest.a.T.test_ok[id-1,smoke]": {"status": "success"},
        "tempest.a.T.test_bad[id-2]": {"status": "fail"},
        "tempest.a.T.test_skip[id-3]": {"status": "skip"},
        "tempest.a.T.test_xfail": {"status": "xfail"},
        "setUpClass (tempest.b.Broken)": {"status": "fail"},
        "setUpClass (tempest.c.Skipped)": {"status": "skip"},
    }
    assert m.count(results, None)[:3] == (2, 2, 2)
    listed = ["tempest.a.T.test_ok", "tempest.a.T.test_bad", "tempest.b.Broken.test_one",
              "tempest.b.Broken.test_two", "tempest.c.Skipped.test_x", "tempest.d.Gone.test"]
    passed, failed, skipped, failures = m.count(results, listed)
    # broken class: 2 failed; skipped class: 1 skipped; unknown test: failed; unlisted: ignored
    assert (passed, failed, skipped) == (1, 4, 1)
    assert any("not run" in f for f in failures)


def test_list_lines_become_anchored_names():
    m = load()
    assert m.strip_id("tempest.a.T.test_ok[id-1,smoke]") == "tempest.a.T.test_ok"
    assert m.strip_id("tempest.a.T.test_ok") == "tempest.a.T.test_ok"
