"""Which figures a report gets: the one list, in the order the report shows them.

Four always (runner/report/condition_figures.py); the fleet's targets side by side where the rows hold more
than one target; one more per numeric dotted axis that varies (RTF and WER against it); the operating-point
figures where the sweep varies a power axis (power_figures.py); and with the sweep's folder, the study
figures where their data exists (study_figures.py), and stream mode's where a record streamed
(stream_figures.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .aggregate import AggregateRow
from .condition_figures import (accuracy_vs_energy, accuracy_vs_switch, energy_by_model_quant, energy_by_noise,
                                insertions_by_noise, metrics_vs_axis, nonspeech_by_noise, numeric_axes,
                                rtf_ram_by_model_quant, switch_axes, targets_by_model_quant, targets_of, wer_by_noise)
from .figure_kit import FigureResult, any_available
from .power_figures import power_figures
from .stream_figures import capacity_target, stream_figures
from .study_figures import write_study_figures


def write_figures(rows: Sequence[AggregateRow], out_dir: Path, sweep=None,
                  skipped: list[str] | None = None) -> list[FigureResult]:
    """Every figure into ``out_dir`` (created), in the order the report shows them: the four, the targets side by
    side where the rows hold more than one, then one per numeric dotted axis that varies.

    With ``sweep`` (the Sweep the rows came from: its results folder holds the per-utterance and per-group
    files) the study figures follow, each only where its data exists: energy against SNR, energy per rail,
    power over time, latency distribution, latency against input length (runner/report/study_figures.py);
    ``skipped`` (a list) receives one line per study figure left out and why, for the report's notes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [energy_by_model_quant(rows, out_dir), wer_by_noise(rows, out_dir),
               # issue 24, each only where the rows have it (results from before it keep their figures)
               *([insertions_by_noise(rows, out_dir)] if _has_noise(rows) and any_available(rows, "ins_rate") else []),
               *([nonspeech_by_noise(rows, out_dir)] if any_available(rows, "nonspeech_wpm") else []),
               rtf_ram_by_model_quant(rows, out_dir), accuracy_vs_energy(rows, out_dir),
               *([targets_by_model_quant(rows, out_dir)] if len(targets_of(rows)) > 1 else []),
               *(metrics_vs_axis(rows, path, out_dir) for path in numeric_axes(rows)),
               *(accuracy_vs_switch(rows, path, out_dir) for path in switch_axes(rows)),  # decode.vad on/off
               *power_figures(rows, out_dir)]
    if sweep is not None:
        if _has_noise(rows) and any_available([r for r in rows if r.key.noise_type != "clean"], "j_per_audio_s"):
            figures.append(energy_by_noise(rows, out_dir))
        figures += write_study_figures(sweep, rows, out_dir, skipped)
        # stream mode's figures (issue 23), only where a record streamed: none, and no note, offline
        figures += stream_figures(rows, sweep.records, out_dir, skipped, capacity_target(sweep.results_dir))
    return figures


def _has_noise(rows: Sequence[AggregateRow]) -> bool:
    return any(r.key.noise_type != "clean" for r in rows)
