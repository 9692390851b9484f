"""The container's memory as a timeline, read from its cgroup on the host (issue 22, item 1).

The cgroup trees here are fakes of the kernel's files (cgroup v1 as Docker 20.10 with the cgroupfs driver lays
them out, and v2 with the systemd driver), written in the kernel's formats; the reader takes the working set as
``docker stats`` does: usage less the inactive file cache (which the kernel reclaims first and is no process's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_clock import ManualClock

from runner.telemetry import memory

CID = "4f1c" + "0" * 60
MIB = 2 ** 20


def _v1(root: Path, usage_mib: float, inactive_mib: float) -> Path:
    d = root / "memory" / "docker" / CID
    d.mkdir(parents=True, exist_ok=True)
    (d / "memory.usage_in_bytes").write_text(f"{int(usage_mib * MIB)}\n")
    (d / "memory.stat").write_text(f"cache {int(inactive_mib * MIB) + 4096}\nrss {int(usage_mib * MIB)}\n"
                                   f"total_inactive_file {int(inactive_mib * MIB)}\ntotal_active_file 0\n")
    return d


def _v2(root: Path, usage_mib: float, inactive_mib: float) -> Path:
    d = root / "system.slice" / f"docker-{CID}.scope"
    d.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (d / "memory.current").write_text(f"{int(usage_mib * MIB)}\n")
    (d / "memory.stat").write_text(f"anon {int(usage_mib * MIB)}\nfile 0\ninactive_file {int(inactive_mib * MIB)}\n")
    return d


@pytest.mark.parametrize("layout", [_v1, _v2])
def test_the_working_set_is_usage_less_inactive_file_cache(tmp_path, layout):
    layout(tmp_path, 1500.0, 300.0)
    group = memory.find_cgroup(CID, tmp_path)
    assert group is not None and group.read_mib() == pytest.approx(1200.0)
    assert "inactive" in group.describe()


def test_no_cgroup_for_the_container_says_why(tmp_path):
    assert memory.find_cgroup(CID, tmp_path) is None
    sampler = memory.ContainerMemorySampler(10, root=tmp_path, clock=ManualClock())
    sampler.start()
    sampler.attach(CID)
    sampler.stop()
    assert sampler.samples == [] and "no memory cgroup" in sampler.reason


def test_the_sampler_follows_the_container_from_attach_to_its_end(tmp_path):
    """Nothing is read before the container is known; readings on the host's clocks while its cgroup exists; a
    cgroup that is gone (the container ended) ends the timeline without an error."""
    d = _v1(tmp_path, 1000.0, 0.0)
    clock = ManualClock()
    sampler = memory.ContainerMemorySampler(10, root=tmp_path, clock=clock)
    sampler.start()
    clock.sleep(0.05)
    assert sampler.samples == []
    sampler.attach(CID)  # one reading at once, then one every 10 ms
    clock.sleep(0.05)
    _v1(tmp_path, 2500.0, 500.0)
    clock.sleep(0.05)
    for f in d.iterdir():
        f.unlink()
    d.rmdir()
    clock.sleep(0.03)
    sampler.stop()
    values = [s.mem_used_mib for s in sampler.samples]
    assert values == [1000.0] * 6 + [2000.0] * 5  # nothing read after its cgroup was gone
    assert all(s.mono_ns is not None for s in sampler.samples)
    health = sampler.health()
    assert health["n_polling_errors"] == 0 and sampler.reason is None
    assert "memory.usage_in_bytes" in health["source"]


def test_the_container_memory_block_takes_the_conditions_own_window():
    """Conditions at 6000 then 2000 MiB in one container: the second reports 2000 (its own window), with what was
    resident at its start and the rise, each window's peak, the source, clock and interval."""
    from runner.telemetry.samplers.base import Sample

    S = 1_000_000_000

    def ev(name, t, **kw):
        return {"event": name, "t_ns": 10 * S + int(t * S), "mono_ns": int(t * S), **kw}

    samples = [Sample(t_ns=10 * S + i * S // 10, mono_ns=i * S // 10,
                      mem_used_mib=1000.0 if i < 25 else 6000.0 if i < 60 else 2000.0) for i in range(100)]
    events = [ev("container_start", 0.5), ev("load_start", 0.6), ev("load_end", 2.0),
              ev("inference_start", 5.95), ev("inference_end", 8.9), ev("container_end", 9.5)]
    block = memory.container_memory_block(samples, events, "cgroup v1 memory.usage_in_bytes - total_inactive_file",
                                          100)
    assert block["peak_mib"] == 2000.0 and block["at_start_mib"] == 6000.0 and block["rise_mib"] == -4000.0
    assert block["windows_mib"]["load"] == 1000.0 and block["windows_mib"]["container"] == 6000.0
    assert block["clock"] == "monotonic" and block["interval_ms"] == pytest.approx(100.0)
    assert block["source"].startswith("cgroup v1") and "own window" in block["headline"]
    none = memory.container_memory_block([], events, None, 100, reason="the local engine runs no container")
    assert none["peak_mib"] is None and none["unavailable"]["peak_mib"] == "the local engine runs no container"
    assert block["unavailable"] == {}
