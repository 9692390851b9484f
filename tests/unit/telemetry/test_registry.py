"""The sampler table: make_sampler maps command-line names to samplers and rejects others; the table
drives the auto order, the companions, and the description every sampler gives of itself."""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.telemetry.samplers.base import NullSampler
from runner.telemetry.samplers.ina3221 import Ina3221Sampler
from runner.telemetry.samplers.jtop import JtopSampler
from runner.telemetry.samplers.nvml import NvmlSampler
from runner.telemetry.samplers.rapl import RaplSampler
from runner.telemetry.samplers.registry import SAMPLER_NAMES, make_sampler
from runner.telemetry.samplers.tegrastats import TegrastatsSampler


def test_every_name_builds_its_sampler():
    expected = {"ina3221": Ina3221Sampler, "tegrastats": TegrastatsSampler, "jtop": JtopSampler,
                "nvml": NvmlSampler, "rapl": RaplSampler, "none": NullSampler}
    assert set(SAMPLER_NAMES) == set(expected)
    for name, cls in expected.items():
        sampler = make_sampler(name, interval_ms=50)
        assert isinstance(sampler, cls) and sampler.name == name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="tegrastats, jtop, nvml, rapl, none"):
        make_sampler("powerjoular")


def test_jtop_probe_names_what_is_missing(tmp_path):
    """Without jetson-stats (or its service socket) jtop is unavailable, with the reason."""
    probe = JtopSampler(socket_path=str(tmp_path / "jtop.sock")).probe()
    assert not probe.ok
    assert "jetson-stats is not installed" in probe.reason or "jtop.sock does not exist" in probe.reason


def test_interval_must_be_positive():
    with pytest.raises(UserError):
        make_sampler("rapl", interval_ms=0)


# -- the sampler table ----------------------------------------------------------------------------

def test_the_auto_order_is_todays_order():
    """`--telemetry auto` tries Jetson first (its INA3221 sysfs rails, tegrastats, then jtop), NVML only for a
    CUDA run, RAPL last."""
    from runner.telemetry.samplers.select import auto_order

    assert auto_order("cpu") == ["ina3221", "tegrastats", "jtop", "rapl"]
    assert auto_order("cuda") == ["ina3221", "tegrastats", "jtop", "nvml", "rapl"]


def test_the_table_drives_the_auto_order(monkeypatch):
    """A row with a better rank than every other is tried first and chosen when it works; a row that serves
    only CUDA runs is not tried on a CPU run; the names and choices come from the table."""
    from runner.telemetry.samplers import registry, select
    from runner.telemetry.samplers.base import Availability, Sampler

    class Fake(Sampler):
        name = "fake"

        def probe(self):
            return Availability.yes()

        def _start(self):
            pass

        def _stop(self):
            pass

    fake = registry.SamplerRow(name="fake", factory=lambda interval_ms, devices, clock=None: Fake(),
                               auto_rank=1, auto_devices=None, hosts="tests", scope="a fake board")
    cuda_only = registry.SamplerRow(name="fake-gpu", factory=lambda interval_ms, devices, clock=None: Fake(),
                                    auto_rank=0, auto_devices=("cuda",), hosts="tests", scope="a fake GPU")
    monkeypatch.setattr(registry, "SAMPLERS", (*registry.SAMPLERS, fake, cuda_only))
    assert select.auto_order("cpu")[0] == "fake" and "fake-gpu" not in select.auto_order("cpu")
    assert select.auto_order("cuda")[:2] == ["fake-gpu", "fake"]
    sampler, reason = select.select_sampler("auto", "cpu", 100)
    assert reason is None and isinstance(sampler, Fake)
    assert registry.health(sampler)["scope"] == "a fake board"
    assert registry.SAMPLER_NAMES == tuple(r.name for r in registry.SAMPLERS[:-2])
    assert select.CHOICES == ("auto", *registry.SAMPLER_NAMES)


def test_the_companion_rule_comes_from_the_table(monkeypatch):
    """NVML on a CUDA run gets RAPL beside it (named or auto-detected); on a CPU run it gets none; a
    companion that cannot work is recorded with its reason instead."""
    from runner.telemetry.samplers import select
    from runner.telemetry.samplers.base import Availability, NullSampler

    class Fake(NullSampler):
        def __init__(self, name, ok=True):
            super().__init__()
            self.name, self.ok = name, ok

        def probe(self):
            return Availability.yes() if self.ok else Availability.no(f"{self.name} is missing")

    monkeypatch.setattr(select, "make_sampler", lambda name, interval_ms, devices=None, clock=None: Fake(name))
    sampler, _ = select.select_sampler("nvml", "cuda", 100)
    assert [c.name for c in sampler.companions] == ["rapl"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a CPU run measuring a GPU names it
    sampler, _ = select.select_sampler("nvml", "cpu", 100)
    assert sampler.companions == []
    monkeypatch.setattr(select, "make_sampler",
                        lambda name, interval_ms, devices=None, clock=None: Fake(name, name != "rapl"))
    sampler, _ = select.select_sampler("nvml", "cuda", 100)
    assert sampler.companions == [] and sampler.companion_reasons == {"rapl": "rapl is missing"}


def test_every_sampler_describes_itself_and_reports_health():
    """Every row says in words what it measures and which memory it reports, builds a sampler of its own
    name, and that sampler's health (unstarted) carries the description the summary records."""
    from runner.telemetry.samplers.registry import SAMPLERS, describe, health, memory_labels

    for row in SAMPLERS:
        assert row.scope.strip() and row.hosts.strip() and row.option == f"--telemetry {row.name}"
        assert (row.memory is None) == (row.memory_label is None)
        sampler = row.factory(100, None)
        assert sampler.name == row.name
        described = health(sampler)
        assert described["sampler"] == row.name and described["scope"] == row.scope and described["memory"] == row.memory
        assert isinstance(described["ok"], bool) and described["n_samples"] == 0
    assert memory_labels() == {"ina3221": "ram", "tegrastats": "ram", "jtop": "ram", "nvml": "gpu_mem"}
    assert describe("rapl")["memory"] is None and "CPU package and DRAM" in describe("rapl")["scope"]
    assert describe("not-a-sampler") == {"sampler": "not-a-sampler"}


def test_the_summary_records_the_samplers_scope():
    """The chosen sampler's description (scope, memory) reaches summary.json through telemetry.health."""
    from runner import merge
    from runner.results import Summary
    from runner.telemetry.samplers import registry
    from runner.telemetry.samplers.base import NullSampler

    sampler = NullSampler("no power sensor found")
    s = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok",
                telemetry={"sampler": "auto"})
    merge.account_energy(s, [], sampler.name, [], [], None, "no power sensor found", 100, None,
                         registry.health(sampler))
    health = s.to_json()["telemetry"]["health"]
    assert health["sampler"] == "none" and health["scope"].startswith("nothing") and health["ok"] is False
    assert s.telemetry["sampler"] == "auto"  # what was asked for stays beside what measured


def test_a_summed_companion_names_every_part():
    """A row that adds its companions' energy to its own (combined_key) has companions, and every part of the
    sum says what it covers in one word, so a null sum can name the part that is missing."""
    from runner.telemetry.samplers.registry import SAMPLERS, sampler_row

    summed = [row for row in SAMPLERS if row.combined_key]
    assert [row.name for row in summed] == ["nvml"] and summed[0].combined_key == "gpu_plus_cpu"
    for row in summed:
        assert row.companions and row.part
        assert all(sampler_row(name).part for name in row.companions)
    assert [row.name for row in SAMPLERS if row.process_memory] == ["nvml"]


def test_nvml_on_a_cpu_run_naming_no_gpu_is_refused_with_the_gpus_there_are(monkeypatch, fake_pynvml):
    """Regression (issue 22, item 13): ``--telemetry nvml`` on a CPU run named no GPU and summed every GPU of the
    host (other users' work included) into the run's energy. It is refused before anything starts, with the sentence
    that lists the GPUs there are and how to name one; named through CUDA_VISIBLE_DEVICES it works."""
    from runner.telemetry.samplers import select
    from runner.telemetry.samplers.nvml import NvmlSampler

    gpus = [fake_pynvml.FakeGpu(name="NVIDIA A100"), fake_pynvml.FakeGpu(name="NVIDIA L4")]
    fake = fake_pynvml.FakePynvml(gpus=gpus)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(select, "make_sampler",
                        lambda name, interval_ms, devices=None, clock=None: NvmlSampler(interval_ms, nvml=fake,
                                                                                         devices=devices))
    with pytest.raises(UserError) as err:
        select.select_sampler("nvml", "cpu", 100)
    text = str(err.value)
    assert "names no GPU" in text and f"0 NVIDIA A100 ({gpus[0].uuid})" in text and "1 NVIDIA L4" in text
    assert "CUDA_VISIBLE_DEVICES" in text and "--telemetry rapl" in text and fake.refcount == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    sampler, reason = select.select_sampler("nvml", "cpu", 100)
    assert reason is None and sampler.name == "nvml"


def test_every_nvml_figure_says_other_processes_on_the_gpu_are_included():
    """Issue 22, item 13: NVML reads the whole device; its scope says every process on it is included."""
    from runner.telemetry.energy.accounting import scope_of
    from runner.telemetry.samplers.registry import describe

    assert scope_of("nvml:sum_of_gpus") == "GPU (all processes on it)"
    assert scope_of("nvml:mig_parent_gpu").endswith("all processes on it)")
    assert "every process" in describe("nvml")["scope"] and "every process" in describe("nvml")["memory"]
