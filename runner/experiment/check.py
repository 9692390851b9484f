"""Check an experiment file's shape (known keys, mappings, lists) and hand every value to its field check.

Field checks (types, ranges, choices) live in runner/settings.py; this module knows the file's layout
(``defaults``, ``grid``, ``entries``, ``exclude``), walks it in file order, and adds the checks that need the
file's context: a model folder or dataset relative to the root, an axis named twice. Every problem is
collected with its key path (``smoke.yaml: grid.quants[1]: ...``); nothing is expanded here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import settings as st
from .. import backends
from ..host import places
from ..data.dataset import is_hf_ref
from ..data.load import load_dataset
from ..errors import UserError
from ..models.resolve import HUB_NAMES, PACKAGED, is_model_dir
from ..spec import detect_device

TOP_KEYS = ("name", "description", "defaults", "grid", "entries", "exclude", "cluster")
# grid key -> the setting (and match key) it fills, in expansion order
AXES = {"backends": "backend", "models": "model", "quants": "quant", "devices": "device", "datasets": "dataset"}
AXIS_KEYS = tuple(AXES.values())
# grid.images: an optional axis over images (e.g. one build per library version). Without it, image stays a
# setting (defaults.image, entries' set.image); with it, the grid chooses and entries may match on image.
IMAGE_AXIS = "images"
DEFAULTS_KEYS = st.field_names(st.Settings)
SETTING_KEYS = tuple(k for k in DEFAULTS_KEYS if k not in AXIS_KEYS)
SECTIONS = st.sections()
_CLASSIC = (*AXIS_KEYS, "image")  # settings chosen by the named grid axes, never by a dotted one
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BAD = object()  # a value that failed its check (already reported)


def at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def dotted_axes() -> tuple[str, ...]:
    """The settings a grid may name by dotted path."""
    return tuple(p for p, lf in st.LEAVES.items() if p not in _CLASSIC and not lf.rule.axis)


@dataclass
class Entry:
    match: dict[str, list]  # axis path -> the values it matches
    assignments: list[tuple[str, Any]]  # (dotted path, checked value), in file order
    written: dict  # the checked ``set`` mapping as written (for the manifest)
    index: int
    origins: dict[str, str] = field(default_factory=dict)  # dotted path -> its key (entries[0].set.decode.beam_size)


@dataclass
class CheckedFile:
    """Everything an experiment file says, checked; what expand() needs."""

    name: str
    description: str
    defaults: st.Settings
    grid: dict[str, list] = field(default_factory=dict)  # axis path -> values, expansion order
    grid_keys: dict[str, str] = field(default_factory=dict)  # axis path -> its key under grid:
    images_axis: bool = False
    entries: list[Entry] = field(default_factory=list)
    exclusions: list[tuple[dict, str]] = field(default_factory=list)
    cluster: str | None = None  # the fleet's Ray address (runner/fleet/); None: run here
    #: The settings ``defaults`` sets, by the key that sets each (dotted path -> defaults.decode.beam_size): what
    #: the file chose, told from the settings' own defaults (expand gives each group its origins).
    origins: dict[str, str] = field(default_factory=dict)


class Checker:
    """Collects every problem in one file; each check returns the normalised value or BAD."""

    def __init__(self, label: str, root: Path):
        self.label = label
        self.root = root
        self.problems: list[str] = []
        self._datasets: dict[Path, str | None] = {}  # resolved path -> load problem

    def add(self, path: str, message: str) -> None:
        self.add_text(f"{self.label}: {path}: {message}" if path else f"{self.label}: {message}")

    def add_text(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def fail(self) -> None:
        if self.problems:
            n = len(self.problems)
            raise UserError(f"{self.root_file} has {n} problem{'s' if n > 1 else ''}; nothing was started:",
                            problems=self.problems)

    root_file: Path | str = ""

    # generic shapes

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], *, note: str = "",
                each: Callable[[str, Any, str], Any] | None = None, suggest: tuple[str, ...] = ()) -> dict | None:
        """The known keys of a mapping, each passed through ``each`` (key, value, path) when given.

        Unknown keys are reported with the allowed ones, in file order among the problems of the known keys'
        values; a value that fails ``each`` is left out.
        """
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping (keys: {', '.join(allowed)}), got {st.show(value)}")
            return None
        known = {}
        for key, item in value.items():
            if isinstance(key, str) and key in allowed:
                good = each(key, item, at(path, key)) if each else item
                if good is not BAD:
                    known[key] = good
                continue
            close = difflib.get_close_matches(str(key), allowed + suggest, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add(at(path, str(key)), f"unknown key; allowed: {', '.join(allowed)}{note}{hint}")
        return known

    def items(self, value: Any, path: str, check: Callable[[Any, str], Any], what: str) -> Any:
        """A non-empty list checked item by item; a value given twice is refused (it would run twice)."""
        if not isinstance(value, list) or not value:
            self.add(path, f"expected a non-empty list of {what}, got {st.show(value)}")
            return BAD
        out: list = []
        for i, item in enumerate(value):
            good = check(item, at(path, i))
            if good is BAD:
                continue
            if good in out:
                self.add(at(path, i), f"{st.show(item)} is repeated; each value may appear once")
                continue
            out.append(good)
        return out

    def resolve(self, value: str) -> Path:
        """A path the file names: next to the file first, then from the root (the current folder); the embedded
        dataset's name, found in neither, is the copy that ships with edgeasr (runner/host/places.py)."""
        return places.data_path(value, *self.bases())

    def bases(self) -> list[Path]:
        """Where a relative path in the file is looked for, in order: the file's folder, then the root."""
        return [Path(self.root_file).parent.resolve(), self.root] if self.root_file else [self.root]

    def looked_for(self, value: str) -> str:
        """Where a relative path was looked for, for the sentence that says it is not there."""
        if Path(value).expanduser().is_absolute():
            return str(Path(value).expanduser())
        return " and ".join(str((b / value).resolve()) for b in dict.fromkeys(self.bases()))

    # one setting: its field check, then the file's context

    def value(self, path: str, value: Any, where: str) -> Any:
        """One setting's value checked by its field check (runner/settings.py), then in this file's context."""
        if path in ("model", "quant") and value is None:  # a sweep names what it measures
            what = "a non-empty string" if path == "model" else None
            self.add(where, f"expected {what}, got null" if what else
                     f"null is not a quant; allowed: {', '.join(st.leaf('quant').rule.choices)}")
            return BAD
        try:
            good = st.check(path, value, root=self.root)
        except st.SettingError as exc:
            for text in exc.messages(f"{self.label}: {where}"):
                self.add_text(text)
            return BAD if exc.partial is None else exc.partial
        if path == "model":
            return self.model(good, where)
        if path == "dataset":
            return self.dataset(good, where)
        if path == "device" and good == "auto":
            return detect_device(good)
        return good

    def model(self, value: str, path: str) -> Any:
        """An installable or hub name as is, a model folder as its absolute path."""
        if value in PACKAGED or value in HUB_NAMES:
            return value
        if any(value in b.bundled_models for b in backends.BACKENDS.values()):
            return value  # a model an image ships (pocketsphinx's en-us); the backend checks the pairing
        from ..models.tiny_models import NAMES as TINY

        if value in TINY:
            return value  # a tiny model `make tiny-models` makes in the models folder; the backend resolves it there
        folder = self.resolve(value)
        if is_model_dir(folder):
            return str(folder)
        if folder.exists():
            self.add(path, f"{value!r} is not a model folder: {folder} lacks model.bin or config.json")
        else:
            self.add(path, f"{value!r} is not a model; allowed: an installable name ({', '.join(PACKAGED)}), "
                           f"a hub name ({', '.join(HUB_NAMES)}), or a model folder (model.bin + config.json)")
        return BAD

    def dataset(self, value: str, path: str) -> Any:
        """A dataset that exists and holds utterances, as its absolute path (an ``hf:`` reference as is)."""
        if is_hf_ref(value):
            try:
                load_dataset(value)
            except UserError as exc:
                self.add(path, str(exc))
                return BAD
            return value
        p = self.resolve(value)
        if p not in self._datasets:
            problem = None
            if not p.exists():
                problem = f"{value!r} does not exist (looked for {self.looked_for(value)})"
            else:
                try:
                    load_dataset(p)
                except UserError as exc:
                    problem = f"{value!r}: {exc}"
            self._datasets[p] = problem
        if self._datasets[p]:
            self.add(path, self._datasets[p])
            return BAD
        return str(p)

    # settings blocks (defaults and entries' set: partial mappings, each key checked where it is written)

    def block(self, value: Any, path: str, allowed: tuple[str, ...], *, note: str = "",
              origins: dict[str, str] | None = None) -> tuple[list[tuple[str, Any]], dict]:
        """The (dotted path, checked value) pairs a settings mapping sets, in file order, and the mapping;
        ``origins`` (when given) gets each set path's key path in the file."""
        pairs: list[tuple[str, Any]] = []

        def leaf(dotted: str, item: Any, where: str) -> Any:
            good = self.value(dotted, item, where)
            if good is not BAD:
                pairs.append((dotted, good))
                if origins is not None:
                    origins[dotted] = where
            return good

        def each(key: str, item: Any, where: str) -> Any:
            if key in SECTIONS:
                sub = self.mapping(item, where, st.field_names(SECTIONS[key]),
                                   each=lambda k, v, p: leaf(f"{key}.{k}", v, p))
                return BAD if sub is None else sub
            return leaf(key, item, where)

        written = self.mapping(value, path, allowed, note=note, each=each) or {}
        return pairs, written

    def noise_levels(self, noise: st.NoiseSettings, path: str) -> bool:
        """Checks that need the merged noise settings, reported at ``path`` (the mapping that set them)."""
        ok = True
        if "file" in noise.types and noise.files is None:
            self.add(at(path, "files"), "required when noise.types includes 'file' (a folder of noise recordings)")
            ok = False
        if noise.types and not noise.snr_db:
            self.add(at(path, "snr_db"), "needs at least one SNR level when noise.types is not empty")
            ok = False
        if not noise.clean and not noise.types:
            self.add(path, "no noise levels: clean is false and types is empty")
            ok = False
        return ok

    # match mappings (entries' match and exclude)

    def match(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict | None:
        """{axis path: [allowed values]}; a single value is a list of one."""
        given = self.mapping(value, path, allowed)
        if given is None:
            return None
        out = {}
        for key, item in given.items():
            if key == "reason":
                continue
            kpath = at(path, key)
            if isinstance(item, list):
                good = self.items(item, kpath, lambda v, p, k=key: self.value(k, v, p), f"{key} values")
            else:
                one = self.value(key, item, kpath)
                good = BAD if one is BAD else [one]
            out[key] = good
        return out


def _apply_pairs(ck: Checker, base: st.Settings, pairs: list[tuple[str, Any]]) -> st.Settings:
    for path, value in pairs:
        base = st.apply(base, path, value, root=ck.root)
    return base


def check_file(raw: Any, ck: Checker, file: Path) -> CheckedFile:
    """The file's sections checked (every problem collected in ``ck``); raises nothing itself."""
    if not isinstance(raw, dict):
        ck.add("", f"expected a mapping with keys {', '.join(TOP_KEYS)} at the top, got {st.show(raw)}")
        ck.fail()
    top = ck.mapping(raw, "", TOP_KEYS) or {}
    for section in ("defaults", "grid", "entries", "exclude"):  # `grid:` with everything commented out
        if section in top and top[section] is None:
            del top[section]

    name = top.get("name", file.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        ck.add("name", f"expected a name of letters, digits, '.', '_' or '-', got {st.show(name)}")
    description = top.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        ck.add("description", f"expected a string, got {st.show(description)}")

    cluster = top.get("cluster")
    if cluster is not None and (not isinstance(cluster, str) or not cluster.strip()):
        ck.add("cluster", f"expected a Ray address such as ray://10.0.0.5:10001, got {st.show(cluster)}")
        cluster = None

    # defaults: the settings' own, then the file's (each key checked where written)
    raw_defaults = top.get("defaults", {})
    raw_grid = top.get("grid", {})
    # grid.targets: the fleet's axis (runner/fleet/), the setting `target` by its plural like the named axes
    targets_axis = isinstance(raw_grid, dict) and "targets" in raw_grid and "target" not in raw_grid
    if targets_axis:
        raw_grid = {("target" if k == "targets" else k): v for k, v in raw_grid.items()}
    given = raw_defaults if isinstance(raw_defaults, dict) else {}
    default_origins: dict[str, str] = {}
    pairs, _ = ck.block(raw_defaults, "defaults", DEFAULTS_KEYS, origins=default_origins)
    defaults = _apply_pairs(ck, st.Settings(), pairs)
    set_paths = {p for p, _ in pairs}
    if "dataset" not in set_paths and not (isinstance(raw_grid, dict) and "datasets" in raw_grid) \
            and "dataset" not in given:
        good = ck.dataset(defaults.dataset, "defaults.dataset")
        if good is not BAD:
            defaults = st.apply(defaults, "dataset", good)
    ck.noise_levels(defaults.noise, "defaults.noise")
    out = CheckedFile(name=name if isinstance(name, str) else "", description=description
                      if isinstance(description, str) else "", defaults=defaults, cluster=cluster,
                      origins=default_origins)

    # grid: each named axis from its list, else the defaults' single value; then the dotted axes
    dotted_ok = dotted_axes()
    named = (*AXES, IMAGE_AXIS)
    note = ", or a setting's dotted path (e.g. decode.beam_size)"
    if isinstance(raw_grid, dict):
        dotted = {k: v for k, v in raw_grid.items() if isinstance(k, str) and k in st.LEAVES and k in dotted_ok}
        refused = {k: v for k, v in raw_grid.items() if isinstance(k, str) and k in st.LEAVES
                   and st.sweep_axis_problem(k)}
        grid_raw = ck.mapping({k: v for k, v in raw_grid.items() if k not in dotted and k not in refused},
                              "grid", named, note=note, suggest=dotted_ok) or {}
        for key in refused:
            ck.add(at("grid", key), f"not a grid axis: {st.sweep_axis_problem(key)}")
    else:
        dotted = {}
        grid_raw = ck.mapping(raw_grid, "grid", named, note=note) or {}
    for axis, key in AXES.items():
        if axis in grid_raw:
            values = ck.items(grid_raw[axis], at("grid", axis), lambda v, p, k=key: ck.value(k, v, p),
                              f"{key} values")
            out.grid[key] = [] if values is BAD else values
            out.grid_keys[key] = axis
        elif key in given or key in set_paths:
            out.grid[key] = [st.get(defaults, key)] if key in set_paths else []
        elif st.get(defaults, key) is not None:
            out.grid[key] = [st.get(defaults, key)]
        else:
            out.grid[key] = []
            ck.add(at("grid", axis), f"missing; list the {key}s to run here, or set defaults.{key}")
    if IMAGE_AXIS in grid_raw:
        values = ck.items(grid_raw[IMAGE_AXIS], at("grid", IMAGE_AXIS), lambda v, p: ck.value("image", v, p),
                          "images")
        out.grid["image"] = [] if values is BAD else values
        out.grid_keys["image"] = IMAGE_AXIS
        out.images_axis = True
        if "image" in given:
            ck.add("defaults.image", "grid.images chooses the image; remove defaults.image")
    for path, raw_values in dotted.items():
        values = ck.items(raw_values, at("grid", path), lambda v, p, k=path: ck.value(k, v, p), f"{path} values")
        out.grid[path] = [] if values is BAD else values
        out.grid_keys[path] = path
    if targets_axis and "target" in out.grid_keys:
        out.grid_keys["target"] = "targets"
    match_keys = AXIS_KEYS + (("image",) if out.images_axis else ()) + tuple(dotted)

    # entries and exclusions
    entries_raw = top.get("entries", [])
    if not isinstance(entries_raw, list):
        ck.add("entries", f"expected a list of {{match, set}} mappings, got {st.show(entries_raw)}")
        entries_raw = []
    for i, entry in enumerate(entries_raw):
        epath = at("entries", i)
        given_entry = ck.mapping(entry, epath, ("match", "set"))
        if given_entry is None:
            continue
        if "set" not in given_entry:
            ck.add(at(epath, "set"), "required: the settings this entry changes")
        match = ck.match(given_entry.get("match", {}), at(epath, "match"), match_keys)
        axis_note = f"; grid axes ({', '.join(AXIS_KEYS)}) are chosen by grid and match, not set"
        entry_origins: dict[str, str] = {}
        set_pairs, written = ck.block(given_entry.get("set", {}), at(epath, "set"), SETTING_KEYS, note=axis_note,
                                      origins=entry_origins)
        kept = []
        for path, value in set_pairs:
            if path == "image" and out.images_axis:
                ck.add(at(epath, "set.image"), "grid.images chooses the image; match on image instead of setting it")
            elif path in dotted:
                ck.add(at(epath, f"set.{path}"), f"grid.{path} chooses it; match on {path} instead of setting it")
            else:
                kept.append((path, value))
        if any(p.startswith("noise.") for p, _ in set_pairs):
            merged = _apply_pairs(ck, defaults, [(p, v) for p, v in set_pairs if p.startswith("noise.")])
            ck.noise_levels(merged.noise, at(epath, "set.noise"))
        if match is not None:
            kept_paths = {p for p, _ in kept}
            out.entries.append(Entry(match, kept, written, i,
                                     {p: w for p, w in entry_origins.items() if p in kept_paths}))

    exclude_raw = top.get("exclude", [])
    if not isinstance(exclude_raw, list):
        ck.add("exclude", f"expected a list of mappings ({', '.join(AXIS_KEYS)}, reason), "
                          f"got {st.show(exclude_raw)}")
        exclude_raw = []
    for i, rule in enumerate(exclude_raw):
        xpath = at("exclude", i)
        match = ck.match(rule, xpath, match_keys + ("reason",))
        if match is None:
            continue
        reason = rule.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            ck.add(at(xpath, "reason"), f"required: a non-empty string saying why, got {st.show(reason)}")
        if not any(k in rule for k in match_keys):
            ck.add(xpath, f"needs at least one of {', '.join(match_keys)} to match")
            continue
        out.exclusions.append((match, reason if isinstance(reason, str) else ""))
    return out
