"""The report's operating-point figures (issue 12): energy per audio second and RTF against the GPU clock and
per power mode, one line per model and quant, the energy-optimal point marked; only where the sweep varies
those axes."""

from __future__ import annotations

from pathlib import Path

from runner.report import figures, power_figures
from runner.report.aggregate import aggregate
from runner.report.records import parse_record


def _rec(model: str, quant: str, axes: dict, repeat: int, j_per_s: float | None, rtf: float) -> dict:
    """One schema-3 conditions.jsonl line with an energy block (the shape runner/tables writes)."""
    energy = {"j_per_audio_s": j_per_s} if j_per_s is not None else {"j_per_audio_s": None}
    summary = {"wer": 0.1, "rtf": rtf, "energy": energy}
    if j_per_s is None:
        summary["unavailable"] = {"energy": "no power sensor found"}
    return {"schema_version": 3, "condition": {
        "key": f"{model}{quant}{axes}{repeat}", "group_key": "g", "backend": "faster-whisper", "model": model,
        "model_ref": f"/models/{model}", "quant": quant, "device": "cuda", "dataset": "test",
        "data_path": "/data/test", "noise_type": "clean", "snr_db": None, "repeat": repeat,
        "decode": {"beam_size": 5}, "axes": axes, "settings_key": "s", "inputs": {},
        "image": "edgeasr/faster-whisper:latest"}, "status": "ok", "error": None, "summary": summary}


def _freq_rows():
    # energy is U-shaped in the clock (slow clocks idle longer, fast ones burn more): optimum at 1200 MHz
    curve = {900: 0.50, 1200: 0.40, 1500: 0.45, 1980: 0.60}
    recs = [parse_record(_rec(m, q, {"power.gpu_freq_mhz": f}, r, j * (2 if m == "base" else 1) + 0.01 * r,
                              0.1 * 900 / f))
            for m in ("tiny.en", "base") for q in ("int8", "fp16") for f, j in curve.items() for r in (0, 1)]
    return aggregate(recs)


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_clock_sweep_gets_an_energy_and_rtf_figure_with_the_optimum_marked(tmp_path):
    """power.gpu_freq_mhz varies: write_figures adds energy_rtf_vs_gpu_freq.png, and each model/quant line's
    energy-optimal clock (1200 MHz here) is found."""
    rows = _freq_rows()
    names = [r.path.name for r in figures.write_figures(rows, tmp_path)]
    assert "energy_rtf_vs_gpu_freq.png" in names and "energy_rtf_by_power_mode.png" not in names
    result = power_figures.energy_rtf_vs_power_axis(rows, "power.gpu_freq_mhz", tmp_path / "f")
    assert result.available
    _png(result.path)


def test_power_modes_are_categories_in_the_sweeps_order(tmp_path):
    """power.mode varies: one figure with the modes as categories; a mode whose energy is unavailable is a gap
    (named), not a zero, and the figure is still drawn."""
    recs = [parse_record(_rec("tiny.en", "int8", {"power.mode": mode}, r, j, rtf))
            for mode, j, rtf in (("7W", 0.30, 0.2), ("15W", 0.25, 0.1), ("MAXN_SUPER", None, 0.05)) for r in (0, 1)]
    rows = aggregate(recs)
    results = power_figures.power_figures(rows, tmp_path)
    assert [r.path.name for r in results] == ["energy_rtf_by_power_mode.png"] and results[0].available
    _png(results[0].path)


def test_no_power_figure_without_power_axes(tmp_path):
    """A sweep that varies no operating point gets none of these figures."""
    rows = aggregate([parse_record(_rec("tiny.en", "int8", {}, r, 0.3, 0.1)) for r in (0, 1)])
    assert power_figures.power_figures(rows, tmp_path) == []
