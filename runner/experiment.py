"""Load a YAML sweep file, validate all of it, and expand it into container groups and conditions.

This module's one job: turn ``experiments/<name>.yaml`` into an ``Experiment``
(groups of conditions) or one ``UserError`` that lists every problem in the file,
each naming its key path (``smoke.yaml: grid.quants[1]: 'fp61' is not a quant;
allowed: fp32, fp16, int8``). Nothing starts until the whole file is valid. It
runs nothing and checks no installed model or image: that stays with the run.

File format (every key optional unless said; unknown keys are errors)::

    name: smoke                  # default: the file's stem; letters, digits, . _ -
    description: free text
    defaults:                    # settings for every grid point; built-in values below
      backend: faster-whisper    # used when grid.backends is absent
      model: tiny.en             # used when grid.models is absent (no built-in: give one or the other)
      quant: int8                # used when grid.quants is absent (no built-in)
      device: cpu                # cpu | cuda
      dataset: data/default      # used when grid.datasets is absent
      image: null                # null: the backend's default image
      limit: null                # N: only the first N utterances of each dataset
      decode: {beam_size: 5, temperature: 0.0, language: null, threads: null, batch_size: 1}
      warmup: 1                  # untimed passes before timing, per container
      repeats: 1                 # each (dataset, noise level) is run this many times
      noise: {types: [], snr_db: [], clean: true, files: null, babble_talkers: 4}
      telemetry: {sampler: auto, interval_ms: 100, baseline_s: 5, baseline_w: null}
      timeout_s: null            # seconds per container; null: no limit
      mem_limit: null            # container memory limit, e.g. 4g
      gpus: null                 # CUDA: the GPUs, NVML indices or UUIDs ("0", [0, 1], "GPU-..."); null:
                                 # $CUDA_VISIBLE_DEVICES, else GPU 0. NVML measures exactly these.
    grid:                        # axes crossed with each other (lists, no repeats)
      backends: [faster-whisper]
      models: [tiny.en, base]    # installable name, hub name, or model folder (model.bin + config.json)
      quants: [fp32, int8]
      devices: [cpu]
      datasets: [data/default]
      images: [edgeasr/faster-whisper:latest, edgeasr/faster-whisper:ct2-4.6.0]   # optional; then entries
                                 # and exclude may match on image, and defaults/set may not name one
    entries:                     # applied in order over defaults to every grid point they match
      - match: {model: base}     # keys backend, model, quant, device, dataset; a value or a list of values
        set: {decode: {beam_size: 1}}   # any defaults key except the grid axes; mappings merge
    exclude:                     # grid points left out, each with the reason recorded in the results
      - {model: medium, quant: fp32, reason: "does not fit 8 GB of unified memory"}

Relative paths (datasets, model folders, noise.files) are relative to the project
root, the current folder unless ``root`` is given. Noise levels: "clean" (when
``clean: true``) then every type in ``types`` at every ``snr_db``; types are white,
pink, brown, babble, file (``file`` mixes recordings from the ``files`` folder).
A grid point the device cannot run (fp16 on CPU) is an error unless an exclude
entry matches it.

Expansion: a grid point whose merged settings give the same container settings
(backend, model, quant, device, image, decode, warmup, timeout_s, mem_limit,
telemetry) as another joins its group: one container loads the model once and
runs all the group's conditions, ordered by dataset (grid order), then clean, then
each noise type by SNR descending, then repeat.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .data import load_dataset
from .errors import UserError
from .launch import backends
from .models import HUB_NAMES, PACKAGED, is_model_dir
from .quant import DEVICES, QUANTS, quant_problem
from .telemetry import registry

NOISE_TYPES = ("white", "pink", "brown", "babble", "file")
TOP_KEYS = ("name", "description", "defaults", "grid", "entries", "exclude")
# grid key -> the setting (and match key) it fills, in expansion order
AXES = {"backends": "backend", "models": "model", "quants": "quant", "devices": "device", "datasets": "dataset"}
AXIS_KEYS = tuple(AXES.values())
# grid.images: an optional axis over images (e.g. one build per library version). Without it, image stays a
# setting (defaults.image, entries' set.image); with it, the grid chooses and entries may match on image.
IMAGE_AXIS = "images"
SETTING_KEYS = ("image", "limit", "decode", "warmup", "repeats", "noise", "telemetry", "timeout_s", "mem_limit",
                "audio_roots", "gpus")
DEFAULTS_KEYS = AXIS_KEYS + SETTING_KEYS
DECODE_KEYS = ("beam_size", "temperature", "language", "threads", "batch_size")
NOISE_KEYS = ("types", "snr_db", "clean", "files", "babble_talkers")
TELEMETRY_KEYS = ("sampler", "interval_ms", "baseline_s", "baseline_w", "loaded_idle_s", "cooldown_max_s")
GROUP_KEYS = ("backend", "model", "quant", "device", "image", "decode", "warmup", "timeout_s", "mem_limit",
              "telemetry", "gpus")

# What a file that says nothing gets. model and quant have none: a sweep names what it measures.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "backend": "faster-whisper",
    "device": "cpu",
    "dataset": "data/default",
    "image": None,
    "limit": None,
    "decode": {"beam_size": 5, "temperature": 0.0, "language": None, "threads": None, "batch_size": 1},
    "warmup": 1,
    "repeats": 1,
    "noise": {"types": [], "snr_db": [], "clean": True, "files": None, "babble_talkers": 4},
    "telemetry": {"sampler": "auto", "interval_ms": 100, "baseline_s": 5.0, "baseline_w": None},
    "timeout_s": None,
    "mem_limit": None,
    "audio_roots": [],  # trusted folders audio may come from besides each dataset's own (--audio-root)
    "gpus": None,
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MEM_RE = re.compile(r"^[0-9]+[bkmgBKMG]?$")  # what docker-py's parse_bytes accepts
_BAD = object()  # a value that failed its check (already reported)
_NO_AXIS = object()  # the grid has no images axis


@dataclass(frozen=True)
class Condition:
    """One (dataset, noise level, repeat) inside a group.

    Fields that do not apply keep their defaults (noise_files only for "file",
    babble_talkers only for "babble"), so a condition's settings, and any key made
    from them, change only when something that affects its audio changes.
    """

    dataset: str  # resolved absolute path
    noise_type: str  # "clean" | white | pink | brown | babble | file
    snr_db: float | None
    repeat: int  # 0-based
    noise_files: str | None = None  # absolute folder path, for "file"
    babble_talkers: int = 4
    limit: int | None = None  # only the first N utterances of the dataset
    audio_roots: tuple[str, ...] = ()  # trusted folders besides the dataset's own (absolute paths)

    def settings(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.audio_roots:  # keys of sweeps made before this setting existed stay the same
            out.pop("audio_roots")
        return out


@dataclass(frozen=True)
class Group:
    """One container: the model is loaded once for all its conditions."""

    backend: str
    model: str  # a name (installable or hub) or an absolute model folder path
    quant: str
    device: str
    image: str | None  # None: the backend's default image
    decode: dict  # beam_size, temperature, language, threads, batch_size (build_run_spec's names)
    warmup: int
    timeout_s: float | None
    mem_limit: str | None
    telemetry: dict  # sampler, interval_ms, baseline_s, baseline_w
    gpus: str | None  # comma-separated NVML indices or UUIDs; None: the default (see spec.resolve_gpus)
    conditions: tuple[Condition, ...]

    def settings(self) -> dict[str, Any]:
        """The resolved container settings (JSON-able): with a condition's settings, a stable condition key.
        An unset ``gpus`` is left out, so that results from before it existed keep their keys."""
        return {k: copy.deepcopy(getattr(self, k)) for k in GROUP_KEYS if not (k == "gpus" and self.gpus is None)}


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path  # the YAML file, absolute
    description: str
    groups: tuple[Group, ...]
    excluded: tuple[dict, ...]  # each excluded grid point (backend, model, quant, device, dataset) and its reason
    resolved: dict  # the experiment as resolved (JSON-able), for the sweep manifest

    @property
    def n_conditions(self) -> int:
        return sum(len(g.conditions) for g in self.groups)


# --- reading ----------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _no_duplicate_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool, type(None))):
            continue  # construct_mapping reports an unhashable key itself
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _find_file(path: str | Path, root: Path) -> Path:
    """The file as given (from the current folder, then the root), else ``experiments/<name>.yaml`` under the root."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    for candidate in (root / p, root / "experiments" / f"{path}.yaml", root / "experiments" / str(path)):
        if candidate.is_file():
            return candidate.resolve()
    shipped = sorted(f.stem for f in (root / "experiments").glob("*.yaml"))
    hint = f"; experiments here: {', '.join(shipped)}" if shipped else ""
    raise UserError(f"experiment file {path} does not exist{hint}")


def _read_yaml(file: Path) -> Any:
    try:
        return yaml.load(file.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = f"{file.name}: not valid YAML: {exc.problem}{where}"
        raise UserError(f"{file} cannot be read:", problems=[problem]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{file} cannot be read:", problems=[f"{file.name}: not valid YAML: {exc}"]) from None


# --- checking ---------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; nested mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _point_label(point: dict) -> str:
    keys = ("backend", "model", "quant", "device", "image")
    return "grid point (" + ", ".join(f"{k}={point[k]}" for k in keys if k in point) + ")"


class _Checker:
    """Collects every problem in one file; each check returns the normalised value or _BAD."""

    def __init__(self, label: str, root: Path):
        self.label = label
        self.root = root
        self.problems: list[str] = []
        self._datasets: dict[Path, str | None] = {}  # resolved path -> load problem

    def add(self, path: str, message: str) -> None:
        text = f"{self.label}: {path}: {message}" if path else f"{self.label}: {message}"
        if text not in self.problems:
            self.problems.append(text)

    # generic shapes

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], *, note: str = "",
                each: Callable[[str, Any, str], Any] | None = None) -> dict | None:
        """The known keys of a mapping, each passed through ``each`` (key, value, path) when given.

        Unknown keys are reported with the allowed ones, in file order among the
        problems of the known keys' values; a value that fails ``each`` is left out.
        """
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping (keys: {', '.join(allowed)}), got {_show(value)}")
            return None
        known = {}
        for key, item in value.items():
            if isinstance(key, str) and key in allowed:
                good = each(key, item, _at(path, key)) if each else item
                if good is not _BAD:
                    known[key] = good
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add(_at(path, str(key)), f"unknown key; allowed: {', '.join(allowed)}{note}{hint}")
        return known

    def number(self, value: Any, path: str, *, integer: bool = False, ge: float | None = None,
               gt: float | None = None, null: bool = False) -> Any:
        if value is None and null:
            return None
        want = "an integer" if integer else "a number"
        if ge is not None:
            want += f" >= {ge:g}"
        if gt is not None:
            want += f" > {gt:g}"
        if null:
            want += " or null"
        ok_type = int if integer else (int, float)
        if (isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value)
                or (ge is not None and value < ge) or (gt is not None and value <= gt)):
            self.add(path, f"expected {want}, got {_show(value)}")
            return _BAD
        return value if integer else float(value)  # 0 and 0.0 must give the same group

    def string(self, value: Any, path: str, *, null: bool = False) -> Any:
        if value is None and null:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(path, f"expected a non-empty string{' or null' if null else ''}, got {_show(value)}")
            return _BAD
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...], what: str) -> Any:
        if not isinstance(value, str) or value not in allowed:
            self.add(path, f"{_show(value)} is not {what}; allowed: {', '.join(allowed)}")
            return _BAD
        return value

    def items(self, value: Any, path: str, check: Callable[[Any, str], Any], what: str, *,
              empty_ok: bool) -> Any:
        """A list checked item by item; a value given twice is refused (it would run twice)."""
        if not isinstance(value, list) or (not value and not empty_ok):
            self.add(path, f"expected a{'' if empty_ok else ' non-empty'} list of {what}, got {_show(value)}")
            return _BAD
        out: list = []
        for i, item in enumerate(value):
            good = check(item, _at(path, i))
            if good is _BAD:
                continue
            if good in out:
                self.add(_at(path, i), f"{_show(item)} is repeated; each value may appear once")
                continue
            out.append(good)
        return out

    def path(self, value: Any, path: str) -> Path | None:
        if self.string(value, path) is _BAD:
            return None
        p = Path(value).expanduser()
        return (p if p.is_absolute() else self.root / p).resolve()

    # grid axes (also defaults' axis keys and match values)

    def backend(self, value: Any, path: str) -> Any:
        reason = backends.unavailable_reason(value) if isinstance(value, str) else None
        if reason:
            self.add(path, f"backend {value} is not available: {reason}")
            return _BAD
        return self.choice(value, path, tuple(backends.BACKENDS), "a backend")

    def quant(self, value: Any, path: str) -> Any:
        return self.choice(value, path, QUANTS, "a quant")

    def device(self, value: Any, path: str) -> Any:
        return self.choice(value, path, DEVICES, "a device")

    def model(self, value: Any, path: str) -> Any:
        """An installable or hub name as is, a model folder as its absolute path."""
        if self.string(value, path) is _BAD:
            return _BAD
        if value in PACKAGED or value in HUB_NAMES:
            return value
        if any(value in b.bundled_models for b in backends.BACKENDS.values()):
            return value  # a model an image ships (pocketsphinx's en-us); the backend checks the pairing
        folder = self.path(value, path)
        if folder is not None and is_model_dir(folder):
            return str(folder)
        if folder is not None and folder.exists():
            self.add(path, f"{value!r} is not a model folder: {folder} lacks model.bin or config.json")
        else:
            self.add(path, f"{value!r} is not a model; allowed: an installable name ({', '.join(PACKAGED)}), "
                           f"a hub name ({', '.join(HUB_NAMES)}), or a model folder (model.bin + config.json)")
        return _BAD

    def _folder(self, value: Any, path: str) -> Any:
        p = self.path(value, path)
        if p is None:
            return _BAD
        if not p.is_dir():
            self.add(path, f"{value!r} is not a folder (looked for {p})")
            return _BAD
        return str(p)

    def dataset(self, value: Any, path: str) -> Any:
        """A dataset that exists and holds utterances, as its absolute path."""
        p = self.path(value, path)
        if p is None:
            return _BAD
        if p not in self._datasets:
            problem = None
            if not p.exists():
                problem = f"{value!r} does not exist (looked for {p})"
            else:
                try:
                    load_dataset(p)
                except UserError as exc:
                    problem = f"{value!r}: {exc}"
            self._datasets[p] = problem
        if self._datasets[p]:
            self.add(path, self._datasets[p])
            return _BAD
        return str(p)

    def axis(self, key: str, value: Any, path: str) -> Any:
        return getattr(self, key)(value, path)

    def image(self, value: Any, path: str) -> Any:
        return self.string(value, path, null=True)

    # settings (defaults and entries' set: partial mappings, each key checked where it is written)

    def settings(self, value: Any, path: str, allowed: tuple[str, ...], *, note: str = "") -> dict:
        return self.mapping(value, path, allowed, note=note, each=self.setting) or {}

    def setting(self, key: str, value: Any, path: str) -> Any:
        if key in AXIS_KEYS:
            return self.axis(key, value, path)
        if key == "image":
            return self.string(value, path, null=True)
        if key == "limit":
            return self.number(value, path, integer=True, ge=1, null=True)
        if key == "warmup":
            return self.number(value, path, integer=True, ge=0)
        if key == "repeats":
            return self.number(value, path, integer=True, ge=1)
        if key == "timeout_s":
            return self.number(value, path, gt=0, null=True)
        if key == "gpus":
            if value is None:
                return None
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip()
                                    for v in items):
                self.add(path, f"expected a GPU index or UUID, or a list of them (e.g. 0, [0, 1], 'GPU-...'), "
                               f"got {_show(value)}")
                return _BAD
            return ",".join(str(v).strip() for v in items)
        if key == "mem_limit":
            if value is None:
                return None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return str(value)
            if not isinstance(value, str) or not _MEM_RE.match(value.strip()):
                self.add(path, f"expected a memory size such as '512m' or '4g' (units b, k, m, g) or null, "
                               f"got {_show(value)}")
                return _BAD
            return value.strip()
        if key == "audio_roots":
            return self.items(value, path, self._folder, "folders", empty_ok=True)
        if key == "decode":
            return self._nested(value, path, DECODE_KEYS, self._decode)
        if key == "noise":
            return self._nested(value, path, NOISE_KEYS, self._noise)
        if key == "telemetry":
            return self._nested(value, path, TELEMETRY_KEYS, self._telemetry)
        raise AssertionError(key)

    def _nested(self, value: Any, path: str, allowed: tuple[str, ...], check: Callable) -> Any:
        given = self.mapping(value, path, allowed, each=check)
        return _BAD if given is None else given

    def _decode(self, key: str, value: Any, path: str) -> Any:
        if key == "beam_size" or key == "batch_size":
            return self.number(value, path, integer=True, ge=1)
        if key == "temperature":
            return self.number(value, path, ge=0)
        if key == "language":
            return self.string(value, path, null=True)
        return self.number(value, path, integer=True, ge=0, null=True)  # threads; null: all cores

    def _noise(self, key: str, value: Any, path: str) -> Any:
        if key == "types":
            return self.items(value, path, lambda v, p: self.choice(v, p, NOISE_TYPES, "a noise type"),
                              "noise types", empty_ok=True)
        if key == "snr_db":
            return self.items(value, path, lambda v, p: self.number(v, p), "numbers (dB)", empty_ok=True)
        if key == "clean":
            if not isinstance(value, bool):
                self.add(path, f"expected true or false, got {_show(value)}")
                return _BAD
            return value
        if key == "files":
            if value is None:
                return None
            folder = self.path(value, path)
            if folder is None:
                return _BAD
            if not folder.is_dir():
                self.add(path, f"{value!r} is not a folder (looked for {folder})")
                return _BAD
            return str(folder)
        return self.number(value, path, integer=True, ge=1)  # babble_talkers

    def _telemetry(self, key: str, value: Any, path: str) -> Any:
        if key == "sampler":
            return self.choice(value, path, ("auto", *registry.SAMPLER_NAMES), "a telemetry sampler")
        if key == "interval_ms":
            return self.number(value, path, integer=True, gt=0)
        if key in ("baseline_s", "loaded_idle_s", "cooldown_max_s"):
            return self.number(value, path, ge=0)
        return self.number(value, path, ge=0, null=True)  # baseline_w: given instead of measured

    def noise_levels(self, noise: dict, path: str) -> bool:
        """Checks that need the merged noise settings, reported at ``path`` (the mapping that set them)."""
        ok = True
        if "file" in noise["types"] and noise["files"] is None:
            self.add(_at(path, "files"), "required when noise.types includes 'file' (a folder of noise recordings)")
            ok = False
        if noise["types"] and not noise["snr_db"]:
            self.add(_at(path, "snr_db"), "needs at least one SNR level when noise.types is not empty")
            ok = False
        if not noise["clean"] and not noise["types"]:
            self.add(path, "no noise levels: clean is false and types is empty")
            ok = False
        return ok

    # match mappings (entries' match and exclude)

    def match(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict | None:
        """{axis: [allowed values]}; a single value is a list of one."""
        given = self.mapping(value, path, allowed)
        if given is None:
            return None
        out = {}
        for key, item in given.items():
            if key not in AXIS_KEYS and key != "image":
                continue
            kpath = _at(path, key)
            if isinstance(item, list):
                good = self.items(item, kpath, lambda v, p, k=key: self.axis(k, v, p), f"{key} values",
                                  empty_ok=False)
            else:
                one = self.axis(key, item, kpath)
                good = _BAD if one is _BAD else [one]
            out[key] = good
        return out


def _matches(match: dict, point: dict) -> bool:
    return all(values is not _BAD and point.get(key) in values for key, values in match.items())


# --- loading ----------------------------------------------------------------------------------------------


def load_experiment(path: str | Path, *, root: str | Path | None = None) -> Experiment:
    """Read, validate and expand one experiment file; one UserError lists every problem in it.

    ``root`` is the folder relative paths start from (default: the current folder,
    the project root when run through make or compose). A bare name such as
    ``smoke`` is looked up as ``experiments/smoke.yaml`` under the root.
    """
    root = Path(root).resolve() if root is not None else Path.cwd()
    file = _find_file(path, root)
    raw = _read_yaml(file)
    ck = _Checker(file.name, root)
    if not isinstance(raw, dict):
        ck.add("", f"expected a mapping with keys {', '.join(TOP_KEYS)} at the top, got {_show(raw)}")
        raise UserError(f"{file} has 1 problem; nothing was started:", problems=ck.problems)
    top = ck.mapping(raw, "", TOP_KEYS) or {}
    for section in ("defaults", "grid", "entries", "exclude"):  # `grid:` with everything commented out
        if section in top and top[section] is None:
            del top[section]

    name = top.get("name", file.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        ck.add("name", f"expected a name of letters, digits, '.', '_' or '-', got {_show(name)}")
    description = top.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        ck.add("description", f"expected a string, got {_show(description)}")

    # defaults: built-ins, then the file's (each key checked where written)
    raw_defaults = top.get("defaults", {})
    raw_grid = top.get("grid", {})
    file_defaults = ck.settings(raw_defaults, "defaults", DEFAULTS_KEYS)
    defaults = _deep_merge(BUILTIN_DEFAULTS, file_defaults)
    if "dataset" not in file_defaults and not (isinstance(raw_grid, dict) and "datasets" in raw_grid):
        defaults["dataset"] = ck.dataset(defaults["dataset"], "defaults.dataset")
    ck.noise_levels(defaults["noise"], "defaults.noise")

    # grid: each axis from its list, else the defaults' single value
    grid_raw = ck.mapping(raw_grid, "grid", (*AXES, IMAGE_AXIS)) or {}
    grid: dict[str, list] = {}
    for axis, key in AXES.items():
        if axis in grid_raw:
            values = ck.items(grid_raw[axis], _at("grid", axis), lambda v, p, k=key: ck.axis(k, v, p),
                              f"{key} values", empty_ok=False)
            grid[key] = [] if values is _BAD else values
        elif key in defaults:
            grid[key] = [] if defaults[key] is _BAD else [defaults[key]]
        else:
            grid[key] = []
            if not (isinstance(raw_defaults, dict) and key in raw_defaults):  # else reported already
                ck.add(_at("grid", axis), f"missing; list the {key}s to run here, or set defaults.{key}")

    images: list | None = None  # None: no image axis
    if IMAGE_AXIS in grid_raw:
        values = ck.items(grid_raw[IMAGE_AXIS], _at("grid", IMAGE_AXIS), ck.image, "images", empty_ok=False)
        images = [] if values is _BAD else values
        if isinstance(raw_defaults, dict) and "image" in raw_defaults:
            ck.add("defaults.image", "grid.images chooses the image; remove defaults.image")
    match_keys = AXIS_KEYS + (("image",) if images is not None else ())

    # entries and exclusions
    entries: list[tuple[dict, dict]] = []
    entries_raw = top.get("entries", [])
    if not isinstance(entries_raw, list):
        ck.add("entries", f"expected a list of {{match, set}} mappings, got {_show(entries_raw)}")
        entries_raw = []
    for i, entry in enumerate(entries_raw):
        epath = _at("entries", i)
        given = ck.mapping(entry, epath, ("match", "set"))
        if given is None:
            continue
        if "set" not in given:
            ck.add(_at(epath, "set"), "required: the settings this entry changes")
        match = ck.match(given.get("match", {}), _at(epath, "match"), match_keys)
        axis_note = f"; grid axes ({', '.join(AXIS_KEYS)}) are chosen by grid and match, not set"
        settings = ck.settings(given.get("set", {}), _at(epath, "set"), SETTING_KEYS, note=axis_note)
        if images is not None and "image" in settings:
            ck.add(_at(epath, "set.image"), "grid.images chooses the image; match on image instead of setting it")
        if "noise" in settings:
            ck.noise_levels(_deep_merge(defaults["noise"], settings["noise"]), _at(epath, "set.noise"))
        if match is not None:
            entries.append((match, settings))

    exclusions: list[tuple[dict, str]] = []
    exclude_raw = top.get("exclude", [])
    if not isinstance(exclude_raw, list):
        ck.add("exclude", f"expected a list of mappings ({', '.join(AXIS_KEYS)}, reason), got {_show(exclude_raw)}")
        exclude_raw = []
    for i, rule in enumerate(exclude_raw):
        xpath = _at("exclude", i)
        match = ck.match(rule, xpath, match_keys + ("reason",))
        if match is None:
            continue
        reason = rule.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            ck.add(_at(xpath, "reason"), f"required: a non-empty string saying why, got {_show(reason)}")
        if not any(k in rule for k in match_keys):
            ck.add(xpath, f"needs at least one of {', '.join(match_keys)} to match")
            continue
        exclusions.append((match, reason if isinstance(reason, str) else ""))

    # expansion
    groups: dict[str, dict] = {}
    excluded: list[dict] = []
    for backend in grid["backend"]:
        for model in grid["model"]:
            for quant in grid["quant"]:
                for device in grid["device"]:
                    for dataset in grid["dataset"]:
                        for image in (images if images is not None else [_NO_AXIS]):
                            point = {"backend": backend, "model": model, "quant": quant, "device": device,
                                     "dataset": dataset}
                            if image is not _NO_AXIS:
                                point["image"] = image
                            _expand_point(ck, point, defaults, entries, exclusions, groups, excluded)
    if not ck.problems and not groups:
        ck.add("exclude", "every grid point is excluded; nothing would run")

    if ck.problems:
        n = len(ck.problems)
        raise UserError(f"{file} has {n} problem{'s' if n > 1 else ''}; nothing was started:", problems=ck.problems)

    built = tuple(Group(**{k: g["settings"][k] for k in GROUP_KEYS}, conditions=tuple(g["conditions"]))
                  for g in groups.values())
    resolved = {
        "name": name,
        "description": description,
        "file": str(file),
        "root": str(root),
        "defaults": defaults,
        "grid": {**{axis: grid[key] for axis, key in AXES.items()}, **({IMAGE_AXIS: images} if images else {})},
        "entries": [{"match": m, "set": s} for m, s in entries],
        "exclude": [{**m, "reason": r} for m, r in exclusions],
        "excluded": excluded,
        "groups": [{**g.settings(), "conditions": [c.settings() for c in g.conditions]} for g in built],
        "counts": {"groups": len(built), "conditions": sum(len(g.conditions) for g in built),
                   "excluded": len(excluded)},
    }
    json.dumps(resolved)  # a bug, not a user error, if this fails: the manifest must be JSON
    return Experiment(name=name, path=file, description=description, groups=built,
                      excluded=tuple(excluded), resolved=resolved)


def _expand_point(ck: _Checker, point: dict, defaults: dict, entries: list[tuple[dict, dict]],
                  exclusions: list[tuple[dict, str]], groups: dict[str, dict], excluded: list[dict]) -> None:
    """Exclude, check, merge and add one grid point's conditions to its group."""
    for match, reason in exclusions:
        if _matches(match, point):
            excluded.append({**point, "reason": reason})
            return
    be = backends.BACKENDS[point["backend"]]
    label = _point_label(point)
    if point["device"] not in be.devices:
        ck.add(label, f"backend {be.name} does not run on {point['device']}; it runs on {', '.join(be.devices)} "
                      "(remove it from the grid, or exclude it with a reason)")
        return
    problem = quant_problem(be.library, point["device"], point["quant"])
    if problem:
        ck.add(label, f"{problem} (remove it from the grid, or exclude it with a reason)")
        return
    settings = _deep_merge(defaults, {})
    noise_from = "defaults.noise"
    for i, (match, fragment) in enumerate(entries):
        if _matches(match, point):
            settings = _deep_merge(settings, fragment)
            if "noise" in fragment:
                noise_from = f"entries[{i}].set.noise"
    settings.update(point)
    noise = settings["noise"]
    if not ck.noise_levels(noise, noise_from):
        return
    group_settings = {k: settings[k] for k in GROUP_KEYS}
    key = json.dumps(group_settings, sort_keys=True)
    group = groups.setdefault(key, {"settings": group_settings, "conditions": []})
    levels: list[tuple[str, float | None]] = [("clean", None)] if noise["clean"] else []
    for kind in noise["types"]:
        levels += [(kind, float(snr)) for snr in sorted(noise["snr_db"], reverse=True)]
    for kind, snr in levels:
        for repeat in range(settings["repeats"]):
            group["conditions"].append(Condition(
                dataset=point["dataset"], noise_type=kind, snr_db=snr, repeat=repeat,
                noise_files=noise["files"] if kind == "file" else None,
                babble_talkers=noise["babble_talkers"] if kind == "babble" else 4,
                limit=settings["limit"], audio_roots=tuple(settings["audio_roots"])))
