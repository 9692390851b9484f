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
