"""Load a YAML sweep file, validate all of it, and expand it into container groups and conditions.

``load_experiment`` turns ``experiments/<name>.yaml`` into an ``Experiment`` (groups of conditions) or one
``UserError`` that lists every problem in the file, each naming its key path (``smoke.yaml: grid.quants[1]:
'fp61' is not a quant; allowed: fp32, fp16, bf16, int8``). Nothing starts until the whole file is valid. It
runs nothing and checks no installed model or image: that stays with the run.

The work is split as the data flows: ``read`` finds the file and reads its YAML, ``check`` checks its shape and
hands each value to its field check in runner/settings.py (the one place defaults and checks live), ``expand``
crosses the grid into groups and conditions.

File format (every key optional unless said; unknown keys are errors)::

    name: smoke                  # default: the file's stem; letters, digits, . _ -
    description: free text
    defaults:                    # settings for every grid point: any key of runner.settings.Settings
      backend: faster-whisper    # used when grid.backends is absent
      model: tiny.en             # used when grid.models is absent (a sweep names it: give one or the other)
      quant: int8                # used when grid.quants is absent (a sweep names it)
      device: cpu                # cpu | cuda | auto (auto: cuda when an NVIDIA driver is present)
      dataset: data/default      # used when grid.datasets is absent
      image: null                # null: the backend's default image
      limit: null                # N: only the first N utterances of each dataset
      decode: {beam_size: 5, temperature: 0.0, language: null, threads: null, batch_size: 1, align: false}
      warmup: 1                  # untimed passes before timing, per container
      repeats: 1                 # each (dataset, noise level) is run this many times
      noise: {types: [], snr_db: [], clean: true, files: null, babble_talkers: 4}
      telemetry: {sampler: auto, interval_ms: 100, baseline_s: 5, baseline_w: null, loaded_idle_s: 2,
                  cooldown_max_s: 30, cooldown_tolerance: 0.1}
      timeout_s: null            # seconds per container; null: no limit
      mem_limit: null            # container memory limit, e.g. 4g
      audio_roots: []            # trusted folders audio may come from besides each dataset's own
      gpus: null                 # CUDA: the GPUs, NVML indices or UUIDs ("0", [0, 1], "GPU-..."); null:
                                 # $CUDA_VISIBLE_DEVICES, else GPU 0. NVML measures exactly these.
      stream: {enabled: false, chunk_ms: 500, gap_ms: 500, concurrency: 1, policy: null, sustain_s: 60}
                                 # live audio (issue 23): off, or chunks at real-time pace; each value of a
                                 # stream.* axis is its own container; policy null: the backend's
      limits: {output_mib: 1024, event_line_mib: 1, hypothesis_mib: 1, log_head_mib: 1, log_tail_mib: 4,
               data_text_mib: 64, audio_mounts: 512}   # what an image or a dataset may make the host keep
    grid:                        # axes crossed with each other (lists, no repeats)
      backends: [faster-whisper]
      models: [tiny.en, base]    # installable name, hub name, or model folder (model.bin + config.json)
      quants: [fp32, int8]
      devices: [cpu]
      datasets: [data/default]
      images: [edgeasr/faster-whisper:latest, edgeasr/faster-whisper:ct2-4.6.0]   # optional; then entries
                                 # and exclude may match on image, and defaults/set may not name one
      decode.beam_size: [1, 5]   # any scalar setting by its dotted path (not noise.*, audio_roots, repeats)
    entries:                     # applied in order over defaults to every grid point they match
      - match: {model: base}     # keys backend, model, quant, device, dataset, image and the dotted axes;
        set: {decode: {beam_size: 1}}   # a value or a list; set: any defaults key except the grid axes
    cluster: ray://10.0.0.5:10001  # optional: run on a fleet (runner/fleet/; grid.targets picks devices)
    exclude:                     # grid points left out, each with the reason recorded in the results
      - {model: medium, quant: fp32, reason: "does not fit 8 GB of unified memory"}

Relative paths (datasets, model folders, noise.files, audio_roots) are relative to the project root, the
current folder unless ``root`` is given. Noise levels: "clean" (when ``clean: true``) then every type in
``types`` at every ``snr_db``; types are white, pink, brown, babble, file (``file`` mixes recordings from the
``files`` folder). A grid point the device cannot run (fp16 on CPU) is an error unless an exclude entry
matches it. Grouping and condition order: see runner/experiment/expand.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import NOISE_TYPES
from .check import AXES, AXIS_KEYS, DEFAULTS_KEYS, IMAGE_AXIS, SETTING_KEYS, TOP_KEYS, Checker, check_file
from .expand import GROUP_KEYS, Condition, Group, expand, resolved_json
from .read import find_file, read_yaml

__all__ = ["load_experiment", "experiment_from_data", "Experiment", "Group", "Condition", "NOISE_TYPES", "AXES", "AXIS_KEYS",
           "IMAGE_AXIS", "TOP_KEYS", "DEFAULTS_KEYS", "SETTING_KEYS", "GROUP_KEYS"]


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path  # the YAML file, absolute
    description: str
    groups: tuple[Group, ...]
    excluded: tuple[dict, ...]  # each excluded grid point (its axis values) and its reason
    resolved: dict  # the experiment as resolved (JSON-able), for the sweep manifest
    cluster: str | None = None  # `cluster:`: the fleet's Ray address (runner/fleet/); None: run here

    @property
    def n_conditions(self) -> int:
        return sum(len(g.conditions) for g in self.groups)


def load_experiment(path: str | Path, *, root: str | Path | None = None) -> Experiment:
    """Read, validate and expand one experiment file; one UserError lists every problem in it.

    ``root`` is the folder relative paths start from (default: the current folder, the project root when run
    through make or compose). A bare name such as ``smoke`` is looked up as ``experiments/smoke.yaml`` under
    the root.
    """
    root = Path(root).resolve() if root is not None else Path.cwd()
    file = find_file(path, root)
    return experiment_from_data(read_yaml(file), file, root=root)


def experiment_from_data(raw: object, file: Path, *, root: str | Path | None = None) -> Experiment:
    """An experiment from its YAML data, checked and expanded exactly as if ``file`` held it (messages and the
    manifest name ``file``): for a command that makes its own grid points, such as `edgeasr capacity`'s probes."""
    root = Path(root).resolve() if root is not None else Path.cwd()
    ck = Checker(file.name, root)
    ck.root_file = file
    checked = check_file(raw, ck, file)
    groups, excluded = expand(ck, checked) if not ck.problems else ([], [])
    if not ck.problems and not groups:
        ck.add("exclude", "every grid point is excluded; nothing would run")
    ck.fail()
    return Experiment(name=checked.name, path=file, description=checked.description, groups=tuple(groups),
                      excluded=tuple(excluded), resolved=resolved_json(checked, file, root, groups, excluded),
                      cluster=checked.cluster)
