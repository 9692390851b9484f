"""The figures users asked for (issue #14 item 8), drawn from fixtures: energy per rail, power over time,
latency distribution, latency against length, energy against SNR, the Pareto front, the numeric SNR axis,
and small-n whiskers; and the HTML report looked at in a headless browser where one is installed."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest

from runner.report.aggregate import Stat, aggregate
from runner.report.condition_figures import pareto_front, snr_positions
from runner.report.figure_kit import whisker
from runner.report.figures import write_figures
from runner.report.html import write_html
from runner.report.records import load_sweep
from runner.report.study_figures import latency_percentiles, rail_split, write_study_figures
from runner.report.traces import read_timeline, record_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRACES = FIXTURES / "sweep_traces"


def _report(fixture: Path, out: Path):
    sweep = load_sweep(fixture)
    rows = aggregate(sweep.records)
    return sweep, rows, write_figures(rows, out, sweep=sweep)


def test_whiskers_are_min_max_below_three_repeats_and_never_below_zero():
    """n = 2: the two values (mean -/+ std/sqrt 2), not 12.7 x their spread; n >= 3: the CI, stopped at 0;
    n = 1: none; a Stat that carries min/max is read directly."""
    two = Stat(n=2, mean=0.05, std=0.1 / math.sqrt(2), ci95=0.6)  # the values 0.0 and 0.1
    below, above = whisker(two)
    assert above == pytest.approx(0.05) and below == pytest.approx(0.05)
    low = Stat(n=2, mean=0.02, std=0.1, ci95=0.9)
    assert whisker(low)[0] == pytest.approx(0.02)  # would reach -0.05: stops at 0
    three = Stat(n=3, mean=0.1, std=0.2, ci95=0.5)
    assert whisker(three) == (pytest.approx(0.1), pytest.approx(0.5))
    assert whisker(Stat(n=1, mean=0.1, std=None, ci95=None)) is None

    assert whisker(Stat(n=2, mean=0.05, std=0.5, ci95=3.0, min=0.04, max=0.07)) == (pytest.approx(0.01), pytest.approx(0.02))


def test_pareto_front_keeps_the_points_no_other_beats_on_both():
    """Lower energy and lower WER are better; a point beaten on both is off the front."""
    points = [(1.0, 5.0), (2.0, 3.0), (2.5, 4.0), (3.0, 1.0), (0.5, 9.0)]
    assert pareto_front(points) == [(0.5, 9.0), (1.0, 5.0), (2.0, 3.0), (3.0, 1.0)]


def test_snr_is_a_numeric_axis_with_clean_set_apart():
    """Each SNR at its value in dB; clean beyond the highest by a gap (so 20 dB and clean never touch)."""
    xs, clean_x, none_x = snr_positions([20.0, 10.0, 0.0])
    assert xs == {20.0: 20.0, 10.0: 10.0, 0.0: 0.0}
    assert clean_x >= 24.0 and none_x <= -4.0


def test_every_study_figure_is_drawn_from_the_traces_fixture(tmp_path):
    """A sweep with per-rail energy, telemetry.csv, events and utterances.jsonl gets all nine figures, each a
    readable PNG, and the HTML page links each to its file."""
    sweep, rows, figures = _report(TRACES, tmp_path)
    names = [f.path.name for f in figures]
    assert names == ["energy_by_model_quant.png", "wer_by_noise.png", "rtf_ram_by_model_quant.png",
                     "accuracy_vs_energy.png", "energy_by_noise.png", "energy_by_rail.png", "power_over_time.png",
                     "latency_distribution.png", "latency_vs_length.png"]
    for fig in figures:
        assert fig.available
        assert matplotlib.image.imread(fig.path).shape[0] > 300
    html = write_html(tmp_path / "report.html", sweep, rows, figures).read_text()
    assert html.count("data:image/png;base64,") == 9
    assert '<a href="power_over_time.png"' in html


def test_study_figures_are_left_out_not_drawn_as_text_where_their_data_is_missing(tmp_path):
    """The plain sweep fixture (no per_rail, no group or condition files) gets the latency distribution from
    the summaries' percentiles and no other study figure; the reasons are returned for the notes."""
    sweep = load_sweep(FIXTURES / "sweep")
    rows = aggregate(sweep.records)
    skipped: list[str] = []
    figures = write_study_figures(sweep, rows, tmp_path, skipped)
    assert [f.path.name for f in figures] == ["latency_distribution.png"]
    assert [s.split(":")[0] for s in skipped] == ["energy by rail", "power over time", "latency against input length",
                                                  "growth with duration"]
    html = write_html(tmp_path / "report.html", sweep, rows, figures, figure_notes=skipped).read_text()
    assert "Figures not drawn" in html and "no condition recorded per-rail energy" in html
    axes_sweep, axes_rows, axes_figures = _report(FIXTURES / "sweep_axes", tmp_path / "axes")
    assert all(f.path.is_file() for f in axes_figures)


def test_rails_split_without_counting_the_input_rail_twice():
    """VDD_IN is the board total: it is the stack's height, not one more part of it."""
    recs = [r for r in record_files(load_sweep(TRACES)) if r.key.noise_type == "clean" and r.key.model == "tiny.en"]
    parts, total = rail_split(recs)
    assert "VDD_IN" not in parts and set(parts) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VDDQ_VDD2_1V8AO"}
    assert total > sum(parts.values())


def test_the_timeline_puts_windows_and_utterances_on_the_trace_clock():
    """Seconds from the container's start on the monotonic clock: the load window is 0.2-1.2 s, the idle
    baseline before 0, and each utterance is a span."""
    tl = read_timeline(TRACES, "g0")
    assert tl.windows["load"] == pytest.approx((0.2, 1.2))
    assert tl.t_s[0] < 0 < tl.t_s[-1]
    assert len(tl.utterances) == 4 * 2 * 8
    assert read_timeline(TRACES, "missing") is None


def test_latency_fit_and_percentiles():
    """The fit recovers a line over lengths that span; one length gives no fit; percentiles interpolate."""
    from runner.report.fit import fit_against_length

    fit = fit_against_length([(1.0, 150.0), (2.0, 200.0), (4.0, 300.0), (8.0, 500.0)])
    assert (fit.intercept, fit.slope) == (pytest.approx(100.0), pytest.approx(50.0)) and fit.xs() == (1.0, 8.0)
    assert isinstance(fit_against_length([(2.0, 1.0), (2.0, 3.0)]), str)
    assert latency_percentiles([100, 200, 300, 400, 500]) == (300.0, pytest.approx(460.0), pytest.approx(496.0))


def test_latency_against_length_fits_no_line_where_the_lengths_do_not_span(tmp_path, monkeypatch):
    """Regression (issue 22, item 14): latency_vs_length.png fitted a line through utterances of 2.3 to 2.7 s and
    extended it to 0 s, printing "877 ms + -119 ms per audio s" as if the intercept were a fixed cost per call.
    Such lengths get no line, and a note that says why and names `edgeasr data lengths`; lengths that span get a
    line over the observed range only, its slope with a 95 % interval that holds the true slope."""
    import random

    from runner.report import study_figures
    from runner.report.fit import fit_against_length

    rng = random.Random(4)
    smoke = [(rng.uniform(2.3, 2.7), rng.uniform(600, 900)) for _ in range(21)]
    note = fit_against_length(smoke, "tiny.en/int8")
    assert isinstance(note, str) and "no line fitted" in note and "edgeasr data lengths" in note
    ladder = [(d, 80 + 45 * d + rng.gauss(0, 5)) for d in (1, 2, 5, 10, 20, 30) for _ in range(3)]
    fit = fit_against_length(ladder)
    assert fit.slope - fit.slope_ci95 <= 45 <= fit.slope + fit.slope_ci95 and fit.xs() == (1, 30)
    assert "± " in fit.slope_text("ms") and "per audio s (95 %)" in fit.slope_text("ms")

    saved = []
    monkeypatch.setattr(study_figures, "save", lambda fig, path, notes: saved.append((fig, list(notes))))
    monkeypatch.setattr(study_figures, "utterance_points", lambda root, key: smoke)
    sweep = load_sweep(TRACES)
    rows = [r for r in aggregate(sweep.records) if r.key.noise_type == "clean"][:1]
    study_figures.latency_vs_length(sweep, rows, record_files(sweep), tmp_path)
    (fig, notes), = saved
    assert fig.axes[0].get_lines() == []  # no line, and none reaching 0 s
    assert any("edgeasr data lengths" in n for n in notes)
    saved.clear()
    monkeypatch.setattr(study_figures, "utterance_points", lambda root, key: ladder)
    study_figures.latency_vs_length(sweep, rows, record_files(sweep), tmp_path)
    (line,) = saved[0][0].axes[0].get_lines()
    assert tuple(line.get_xdata()) == (1, 30)  # the observed range only


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)), None)


def test_the_html_report_renders_in_a_headless_browser(tmp_path):
    """The page with every figure opens in a real browser; the screenshot stays under pytest's tmp dir as the
    test's artifact (never committed)."""
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser (chromium) installed")
    sweep, rows, figures = _report(TRACES, tmp_path / "report")
    page = write_html(tmp_path / "report" / "report.html", sweep, rows, figures)
    shot = tmp_path / "report_screenshot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,6000",
           page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    image = matplotlib.image.imread(shot)
    assert image.shape[0] >= 6000 - 1 and image.shape[1] >= 1280 - 1
    # not a blank page: the figures' colours are there (many distinct pixel values)
    assert len({tuple(px) for px in image[::40, ::40].reshape(-1, image.shape[2]).round(2)}) > 50


def test_rapl_subdomains_and_psys_are_not_stacked_and_companions_are():
    """On a CUDA host: the GPU's channel and RAPL's package and DRAM stack; core, uncore and psys (parts of
    or spans over others) do not."""
    from runner.report.traces import RecordFiles

    energy = {"per_rail": {"gpu0": 10.0},
              "companions": {"rapl": {"per_rail": {"package-0": 6.0, "package-0/core": 4.0, "package-0/uncore": 1.0,
                                                   "package-0/dram": 2.0, "psys": 20.0}}}}
    rec = RecordFiles(key=None, condition_key="k", group_key="g", repeat=0, status="ok",
                      summary={"energy": energy, "audio_s": 2.0})
    parts, total = rail_split([rec])
    assert parts == {"gpu0": 5.0, "rapl:package-0": 3.0, "rapl:package-0/dram": 1.0}
    assert total is None


def test_a_run_folder_keeps_its_files_in_the_folder_itself(tmp_path):
    """`edgeasr run` writes telemetry.csv, raw/events.jsonl and utterances.jsonl into the run folder (no
    conditions/ or groups/): the timeline, latency and length figures find them there."""
    from runner.report.records import ConditionRecord, Sweep

    run = tmp_path / "run"
    (run / "raw").mkdir(parents=True)
    shutil.copy(TRACES / "groups" / "g0" / "telemetry.csv", run / "telemetry.csv")
    shutil.copy(TRACES / "groups" / "g0" / "raw" / "events.jsonl", run / "raw" / "events.jsonl")
    shutil.copy(TRACES / "conditions" / "g0c0r0" / "utterances.jsonl", run / "utterances.jsonl")
    traces = load_sweep(TRACES)
    first = next(r for r in traces.records if r.key.noise_type == "clean")
    sweep = Sweep(results_dir=run, title="one run", records=(ConditionRecord(first.key, 0, "ok", None,
                                                                              first.summary),))
    skipped: list[str] = []
    figures = write_figures(aggregate(sweep.records), tmp_path / "out", sweep=sweep, skipped=skipped)
    names = {f.path.name for f in figures}
    assert {"power_over_time.png", "latency_distribution.png", "latency_vs_length.png", "energy_by_rail.png"} <= names
    # the fixture's utterances record no memory or energy of their own: growth with duration (issue 24) says so
    assert [s.split(":")[0] for s in skipped] == ["growth with duration"]
