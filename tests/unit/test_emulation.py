"""Emulated runs (issue 25, item 3): an image whose architecture is not the host's runs under qemu, so its speed
and energy are the emulator's. The summary records it, the run view and the sweep table mark those figures
`emulated`, and compare refuses to set them against a native run's (runner/report/comparable.py), while WER is
still compared: emulation changes the clock, not the transcript."""

from __future__ import annotations

import io
import json

from helpers import command_args
from helpers import run_folder as _run_folder
from rich.console import Console

from runner.commands import compare as compare_cmd
from runner.host.platforms import emulation_record
from runner.report.aggregate import EMULATED_METRICS, ENERGY_METRICS, aggregate
from runner.report.compare import Gates, compare
from runner.report.records import load_results
from runner.report.sweep_table import build_table
from runner.report.table import print_summary, summary_rows
from runner.results import Summary

ARM_ON_X86 = emulation_record("arm64", "x86_64")


def test_the_record_says_which_cpu_ran_which_image():
    assert ARM_ON_X86 == {"image_arch": "arm64", "host_machine": "x86_64", "emulator": "qemu-user (binfmt_misc)",
                          "note": "speed and energy are of arm64 emulated on x86_64, not of an arm64 device"}
    assert emulation_record("arm64", "aarch64") is None and emulation_record("amd64", "x86_64") is None
    assert emulation_record(None, "x86_64") is None  # an image that records no architecture: native


def test_a_summary_keeps_the_emulation_block_only_where_emulated():
    base = dict(backend="b", model="m", quant="int8", device="cpu", dataset="d", status="ok")
    assert "emulation" not in Summary(**base).to_json()  # native summaries keep the keys they always had
    assert Summary(**base, emulation=ARM_ON_X86).to_json()["emulation"] == ARM_ON_X86


def test_speed_and_energy_metrics_are_the_emulated_ones():
    assert {"rtf", "latency_p50_ms", "load_s"} | ENERGY_METRICS <= EMULATED_METRICS
    assert "wer" not in EMULATED_METRICS and "cer" not in EMULATED_METRICS


def _summary(emulated: bool) -> dict:
    s = {"backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu", "dataset": "d",
         "status": "ok", "n_utterances": 3, "n_failed": 0, "n_scored": 3, "n_unreferenced": 0, "wer": 0.05,
         "sub": 1, "del": 0, "ins": 0, "rtf": 2.5, "rtfx": 0.4, "latency_ms": {"p50": 900, "p90": 990, "p99": 999},
         "load_s": 3.2, "warmup_s": 1.0,
         "energy": {"total_j": 30.0, "dynamic_j": 10.0, "j_per_audio_s": 7.5, "source": "rapl", "total_kind": "rapl:package+dram",
                    "scope": "CPU package+DRAM", "n_samples": 9, "interval_ms": 100.0}}
    if emulated:
        s["emulation"] = ARM_ON_X86
    return s


def test_the_run_view_marks_speed_and_energy_emulated_never_as_a_device_figure():
    rows = dict(summary_rows(_summary(True)))
    for name in ("RTF", "latency p50/p90/p99", "model load", "warm-up", "energy (inference)",
                 "energy / audio s"):
        assert "emulated" in rows[name], name
    assert "emulated" not in rows["WER"]
    assert "arm64 emulated on x86_64" in rows["emulated"]
    native = dict(summary_rows(_summary(False)))
    assert "emulated" not in native and not any("emulated" in v for v in native.values())
    out = io.StringIO()
    print_summary(_summary(True), Console(file=out, width=200))
    assert "emulated" in out.getvalue()


def _folder(tmp_path, name, emulated, rtf):
    folder = _run_folder(tmp_path, name, image=f"edgeasr/fw:{name}", rtf=rtf, j=0.5)
    if emulated:
        s = json.loads((folder / "summary.json").read_text())
        s["emulation"] = ARM_ON_X86
        (folder / "summary.json").write_text(json.dumps(s))
    return folder


def test_the_sweep_table_marks_an_emulated_conditions_speed_and_energy(tmp_path):
    rows = aggregate(load_results(_folder(tmp_path, "arm", True, 2.5)).records)
    assert rows[0].emulated == "arm64 emulated on x86_64"
    model = build_table(rows, "t", terminal=False)
    headers = list(model.headers)
    cells = {h: c.text for h, c in zip(headers, model.rows[0])}
    assert cells["RTF"].endswith("(emulated)") and cells["J / audio s"].endswith("(emulated)")
    assert not cells["WER %"].endswith("(emulated)")
    assert any("emulat" in r and "not a device" in r for r in model.remarks)


def test_compare_refuses_an_emulated_run_against_a_native_one_but_compares_its_wer(tmp_path, capsys):
    native = _folder(tmp_path, "x86", False, 0.05)
    emulated = _folder(tmp_path, "arm", True, 2.5)
    cmp = compare(load_results(native), [("arm", load_results(emulated))], "x86")
    pair = cmp.pairs[0]
    for metric in ("rtf", "latency_p50_ms", "j_per_audio_s"):
        assert pair.delta(metric).not_comparable == ("not comparable: an emulated run (arm64 emulated on x86_64) "
                                                     "vs a native one"), metric
    assert pair.delta("wer").not_comparable is None  # the transcript does not depend on the clock
    failures = cmp.gate_failures(Gates(max_rtf_increase_pct=10))
    assert len(failures) == 1 and "not comparable: an emulated run" in failures[0]
    assert compare_cmd.main(command_args(compare_cmd, str(native), str(emulated), "--max-rtf-increase", "10")) == 1
    assert "+4900" not in capsys.readouterr().out
    # two emulated runs are the same emulator's figures: compared
    other = _folder(tmp_path, "arm2", True, 2.6)
    both = compare(load_results(emulated), [("arm2", load_results(other))], "arm")
    assert both.pairs[0].delta("rtf").not_comparable is None


def test_an_emulated_arm64_container_sees_a_stand_in_arm_cpuinfo_and_a_native_one_the_real(tmp_path, monkeypatch):
    """qemu-user (Debian 12's 7.2) passes the host's x86 /proc/cpuinfo through; onnxruntime's CPU detection
    (pytorch's cpuinfo) dereferences NULL on it at import and the emulated process then waits forever (seen:
    `import onnxruntime` under qemu -strace: SIGSEGV after reading /proc/cpuinfo). An arm64 container on an x86 host
    gets a FAKE ARMv8.0 /proc/cpuinfo, read-only, with the host's CPU count; a native container nothing."""
    from fake_docker import FakeClient, FakeImage

    from runner.host import platforms
    from runner.launch import docker_engine

    monkeypatch.setattr(platforms._platform, "machine", lambda: "x86_64")
    client = FakeClient({"arm": FakeImage("sha256:" + "a" * 64, ["arm"], {}, {"Architecture": "arm64"}),
                         "x86": FakeImage("sha256:" + "b" * 64, ["x86"], {}, {"Architecture": "amd64"})})
    for image in ("arm", "x86"):
        started = docker_engine.start_container(client, image, mounts=[], env={}, log_path=tmp_path / f"{image}.log")
        docker_engine.discard_container(started)
    arm, x86 = client.created
    [cpuinfo] = [m for m in arm.kwargs["mounts"] if m["Target"] == "/proc/cpuinfo"]
    assert cpuinfo["ReadOnly"] and cpuinfo["Type"] == "bind"
    text = open(cpuinfo["Source"]).read()
    import os

    assert text.count("processor\t:") == os.cpu_count() and "CPU implementer\t: 0x41" in text
    assert "Features\t: fp asimd" in text and "FAKE" in text
    assert not [m for m in x86.kwargs["mounts"] if m["Target"] == "/proc/cpuinfo"]
