"""Where server diagnostics come from: /proc for process uptime and CPU time, the server's
cgroup files for memory and CPU (v1 and v2 layouts)."""

from __future__ import annotations

import os
import time

from pocketstack.drivers.compute import container_cgroups as container
from pocketstack.drivers.compute._host import process_times


def test_process_times_counts_cpu_and_uptime():
    before = process_times(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    after = process_times(os.getpid())
    assert before is not None and after is not None
    assert after[1] > before[1] and after[0] >= before[0] >= 0
    assert process_times(2 ** 22 + 12345) is None  # no such process


def test_cgroup_usage_v2_and_v1(tmp_path, monkeypatch):
    monkeypatch.setattr(container, "CGROUP_ROOT", tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpu memory")
    d = tmp_path / "grp" / "srv"
    d.mkdir(parents=True)
    (d / "memory.max").write_text("134217728\n")
    (d / "memory.current").write_text("1048577\n")
    (d / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\n")
    assert container.Cgroups("grp").usage("srv") == (134217728, 1048577, 2_500_000)
    (d / "memory.max").write_text("max\n")  # no limit: unknown, not a number
    assert container.Cgroups("grp").usage("srv")[0] is None

    (tmp_path / "cgroup.controllers").unlink()
    m = tmp_path / "memory" / "grp" / "srv"
    m.mkdir(parents=True)
    (m / "memory.limit_in_bytes").write_text("67108864\n")
    (m / "memory.usage_in_bytes").write_text("4096\n")
    assert container.Cgroups("grp").usage("srv") == (67108864, 4096, None)
    a = tmp_path / "cpuacct" / "grp" / "srv"
    a.mkdir(parents=True)
    (a / "cpuacct.usage").write_text("123456789\n")
    assert container.Cgroups("grp").usage("srv") == (67108864, 4096, 123456789)
    assert container.Cgroups("grp").usage("gone") == (None, None, None)
