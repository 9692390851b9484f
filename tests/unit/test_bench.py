"""make bench's arithmetic and data handling (the measuring itself needs the engine: `make bench`)."""

import importlib.util
import json

from helpers import ROOT

spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "bench_overhead.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_ratios_line_gives_median_minima_and_spread():
    line = bench.ratios_line("(same versions)", harness=[1.10, 1.00, 1.02], bare=[1.00, 1.00, 0.98], target=True)
    # per pair 1.100, 1.000, 1.041 -> median 1.041; minima 1.00 / 0.98 = 1.020
    assert "median 1.041" in line and "of minima 1.020" in line and "spread 1.000..1.100" in line
    assert "over 3 pairs" in line and "OK" in line
    assert "OVER" in bench.ratios_line("x", [1.2, 1.2], [1.0, 1.0], target=True)
    assert "target" not in bench.ratios_line("x", [1.2], [1.0], target=False)


def test_subset_keeps_audio_under_its_own_manifest(tmp_path):
    manifest = bench.subset(ROOT / "data" / "default", 3, tmp_path / "d")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 3 and all((manifest.parent / r["audio"]).is_file() for r in rows)
    assert all("/" not in r["audio"] for r in rows)


def _bench_backends():
    spec = importlib.util.spec_from_file_location("bench_backends", ROOT / "bench" / "bench_backends.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_backends_reads_its_rows_from_the_table(monkeypatch):
    """One backend per inference library, from the table: today's four with tiny.en int8 (pocketsphinx: its
    bundled en-us in fp32), and a CPU backend of a new library joins without an edit of the script."""
    import dataclasses

    from runner import backends

    module = _bench_backends()
    assert module.bench_rows() == {"faster-whisper": ("tiny.en", "int8"), "transformers": ("tiny.en", "int8"),
                                   "onnxruntime": ("tiny.en", "int8"), "pocketsphinx": ("en-us", "fp32")}
    new = dataclasses.replace(backends.BACKENDS["pocketsphinx"], name="newlib", library="newlib",
                              quant_map=backends.quant_map(cpu={"fp32": "float32", "int8": "int8"}))
    monkeypatch.setitem(backends.BACKENDS, "newlib", new)
    assert module.bench_rows()["newlib"] == ("en-us", "int8")
