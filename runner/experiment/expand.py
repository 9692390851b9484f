"""Expand a checked experiment into containers (groups) and their conditions.

The grid's axes are crossed in order: backend, model, quant, device, dataset, image, then each dotted axis in
file order. Each grid point takes the defaults, then every entry that matches it, then its own axis values.
Points whose container settings agree share a group: one container loads the model once and runs all the
group's conditions. An axis that the point's backend can vary inside one loaded model of the point's model kind
(its table row's ``in_container_for``: ``decode.beam_size`` for a Whisper model, not for a CTC one) does not
split groups: the group's decode takes the axis' first value and each condition carries its ``decode``
overrides. Each group remembers where the file set each of its settings (``origins``): a decode value its model
cannot honour is refused as the file loads, naming that key. Dataset, limit, noise and repeats are always
conditions of one group. Conditions are ordered by dataset, then the in-container axis values (grid order),
then clean, then each noise type by SNR descending, then repeat.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import settings as st
from .. import backends
from ..models.resolve import ref_kind
from .check import BAD, Checker, CheckedFile

GROUP_KEYS = ("backend", "model", "quant", "device", "image", "decode", "warmup", "timeout_s", "mem_limit",
              "telemetry", "gpus", "power", "target", "stream")


@dataclass(frozen=True)
class Condition:
    """One (dataset, in-container decode values, noise level, repeat) inside a group.

    Fields that do not apply keep their defaults (noise_files only for "file", babble_talkers only for
    "babble"), so a condition's settings, and any key made from them, change only when something that affects
    its audio or its decoding changes.
    """

    dataset: str  # resolved absolute path
    noise_type: str  # "clean" | white | pink | brown | babble | file
    snr_db: float | None
    repeat: int  # 0-based
    noise_files: str | None = None  # absolute folder path, for "file"
    babble_talkers: int = 4
    limit: int | None = None  # only the first N utterances of the dataset
    audio_roots: tuple[str, ...] = ()  # trusted folders besides the dataset's own (absolute paths)
    #: This condition's decode settings where they differ from its group's (in-container axes); {}: none.
    decode: dict = field(default_factory=dict)
    #: Every grid axis' value at this point (dotted path -> value), for tables and figures; not identity.
    axes: dict = field(default_factory=dict, compare=False)

    def settings(self) -> dict[str, Any]:
        """The JSON a condition key is made from; keys of sweeps made before a field existed stay the same."""
        out = asdict(self)
        out.pop("axes")
        if not self.audio_roots:
            out.pop("audio_roots")
        if not self.decode:
            out.pop("decode")
        return out


@dataclass(frozen=True)
class Group:
    """One container: the model is loaded once for all its conditions."""

    backend: str
    model: str  # a name (installable or hub) or an absolute model folder path
    quant: str
    device: str
    image: str | None  # None: the backend's default image
    decode: dict  # beam_size, temperature, language, threads, batch_size (+ fields that differ from default)
    warmup: int
    timeout_s: float | None
    mem_limit: str | None
    telemetry: dict  # sampler, interval_ms, baseline_s, baseline_w (+ fields that differ from default)
    gpus: str | None  # comma-separated NVML indices or UUIDs; None: the default (see spec.resolve_gpus)
    conditions: tuple[Condition, ...]
    #: The container's full settings (its first condition's dataset, limit and noise; decode at the group's
    #: values): what build_run_spec takes for this group.
    spec_settings: st.Settings = field(default_factory=st.Settings)
    #: The operating point's settings that differ from their defaults (runner/power); {}: the device as it is.
    power: dict = field(default_factory=dict)
    #: The fleet target that runs it (runner/fleet/); "local": this machine.
    target: str = "local"
    #: The settings the experiment file set for this group, by the key that set each (dotted path ->
    #: defaults.decode.language, entries[0].set.decode.temperature, grid.decode.beam_size[1]); a setting left at
    #: its default has none. Not identity: it only names origins in plan-time refusals.
    origins: dict = field(default_factory=dict, compare=False)
    #: Stream mode's settings, its policy resolved (stream_dict); {}: offline, as every group before stream mode.
    stream: dict = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The resolved container settings (JSON-able): with a condition's settings, a stable condition key.
        An unset ``gpus``, an empty ``power``, the ``local`` target and an offline group's empty ``stream`` are
        left out, so that results from before they existed keep their keys; any other target joins the key (one
        device class's result is not another's), and so does stream mode (a stream's result is not an offline
        one's)."""
        return {k: copy.deepcopy(getattr(self, k)) for k in GROUP_KEYS
                if not (k == "gpus" and self.gpus is None) and not (k == "power" and not self.power)
                and not (k == "target" and self.target == "local") and not (k == "stream" and not self.stream)}


def stream_dict(s: st.Settings, kind: str | None = None) -> dict[str, Any]:
    """Stream mode's settings as a group's key holds them: {} when it is off (whatever its other fields say: an
    offline run's key is what it always was), else every field with the policy the backend runs for a model of
    ``kind`` (its default where none is named), so that naming the default is the same group. A backend that
    cannot stream gets the policy asked for (its refusal is reported apart)."""
    if not s.stream.enabled:
        return {}
    out = s.stream.to_json()
    out.pop("enabled")
    facts = backends.BACKENDS[s.backend].stream_facts(kind)
    if facts.problem(s.stream.policy) is None:
        out["policy"] = facts.resolve(s.stream.policy)
    return out


def group_dict(s: st.Settings, kind: str | None = None) -> dict[str, Any]:
    """A group's settings as the dict its key is made from (decode and telemetry as settings.section_dict);
    ``kind``: the model's (runner.models), for stream mode's policy."""
    out = {k: getattr(s, k) for k in GROUP_KEYS if k != "stream"}
    # Stream mode is the container's (a policy, chunking and streams are fixed when it starts): each value of a
    # stream setting is its own group; only when it is on, so that offline groups keep their keys.
    out["stream"] = stream_dict(s, kind)
    out["decode"] = st.section_dict(s, "decode")
    out["telemetry"] = st.section_dict(s, "telemetry")
    # Each operating point is its own container (a device state is not a decode option); only the fields
    # that are set, so that groups without one keep their keys.
    out["power"] = {f.name: getattr(s.power, f.name) for f in fields(s.power)
                    if getattr(s.power, f.name) != f.default}
    # An entry may set other limits for some points: those are other containers (a limit is not part of a
    # result's identity, so it stays out of the Group's keyed settings).
    out["limits"] = {f.name: getattr(s.limits, f.name) for f in fields(s.limits)
                     if getattr(s.limits, f.name) != f.default}
    # Non-speech items (issue 24) join the group's dataset: an entry asking for others is another container (its
    # data fingerprint, and so its key, differs already); set only where asked, so other groups stay as they were.
    ns = {f.name: getattr(s.nonspeech, f.name) for f in fields(s.nonspeech)
          if getattr(s.nonspeech, f.name) != f.default}
    if ns:
        out["nonspeech"] = ns
    return out


def in_container_axes(backend: str, grid: dict[str, list], kind: str | None = None, align: bool = False
                      ) -> list[str]:
    """The grid's dotted axes this backend varies inside one loaded model of ``kind`` (runner.models: whisper,
    ctc; None: unknown) with decode.align ``align``: the decode settings its row's in_container_for lists."""
    inside = backends.BACKENDS[backend].in_container_for(kind, align)
    return [p for p in grid if p.startswith("decode.") and p in inside]


def _matches(match: dict, point: dict) -> bool:
    return all(values is not BAD and point.get(key) in values for key, values in match.items())


def _point_label(point: dict) -> str:
    keys = ("backend", "model", "quant", "device", "image")
    return "grid point (" + ", ".join(f"{k}={point[k]}" for k in keys if k in point) + ")"


def expand(ck: Checker, checked: CheckedFile) -> tuple[list[Group], list[dict]]:
    """Every grid point's conditions in its group; problems (a point the device cannot run, no noise levels)
    go to ``ck``."""
    paths = list(checked.grid)
    groups: dict[str, dict] = {}
    excluded: list[dict] = []
    kinds: dict[str, str | None] = {}  # model -> its kind (a folder's config is read once)
    for values in itertools.product(*(checked.grid[p] for p in paths)):
        point = dict(zip(paths, values))
        _expand_point(ck, checked, point, groups, excluded, kinds)
    built = [Group(**{k: g["dict"][k] for k in GROUP_KEYS}, conditions=tuple(g["conditions"]),
                   spec_settings=g["spec"], origins=g["origins"]) for g in groups.values()]
    _refuse_what_models_cannot_honour(ck, built, kinds)
    _refuse_what_backends_cannot_stream(ck, built, kinds)
    return built, excluded


def _refuse_what_models_cannot_honour(ck: Checker, groups: list[Group], kinds: dict[str, str | None]) -> None:
    """A decode value the file set that a group's model cannot honour (the backend table's facts for its kind:
    a beam size for a CTC model), named by the key that set it; found here, when the file is loaded, so that
    nothing (no image build, no model install) starts first. Exclusions have already removed their points."""
    for g in groups:
        be = backends.BACKENDS[g.backend]
        for path, origin in g.origins.items():
            refusal = be.decode_refusal(path, st.get(g.spec_settings, path), kinds.get(g.model),
                                        Path(g.model).name, f"{ck.label}: {origin}")
            if refusal:
                ck.add_text(refusal)


def _refuse_what_backends_cannot_stream(ck: Checker, groups: list[Group], kinds: dict[str, str | None]) -> None:
    """Stream mode for a group whose backend cannot stream (whisperx, espnet), or with a policy its model's kind
    does not have, named by the key that asked for it (the policy's, else stream.enabled's); found as the file
    loads, before any image is built or container started. Each sentence once."""
    said: set[str] = set()
    for g in groups:
        s = g.spec_settings.stream
        if not s.enabled:
            continue
        path = "stream.policy" if s.policy is not None else "stream.enabled"
        origin = g.origins.get(path) or g.origins.get("stream.enabled") or f"defaults.{path}"
        refusal = backends.BACKENDS[g.backend].stream_refusal(s.policy, kinds.get(g.model), Path(g.model).name,
                                                              f"{ck.label}: {origin}")
        if refusal and refusal not in said:
            said.add(refusal)
            ck.add_text(refusal)


def _grid_origin(checked: CheckedFile, path: str, value: Any) -> str:
    """The grid key (and item) that gave ``value`` to the axis ``path``: grid.decode.beam_size[1]."""
    return f"grid.{checked.grid_keys[path]}[{checked.grid[path].index(value)}]"


def _expand_point(ck: Checker, checked: CheckedFile, point: dict, groups: dict[str, dict],
                  excluded: list[dict], kinds: dict[str, str | None]) -> None:
    """Exclude, check, merge and add one grid point's conditions to its group."""
    for match, reason in checked.exclusions:
        if _matches(match, point):
            excluded.append({**point, "reason": reason})
            return
    be = backends.BACKENDS[point["backend"]]
    label = _point_label(point)
    if point["device"] not in be.devices:
        ck.add(label, f"backend {be.name} does not run on {point['device']}; it runs on {', '.join(be.devices)} "
                      "(remove it from the grid, or exclude it with a reason)")
        return
    problem = be.quant_problem(point["device"], point["quant"])
    if problem:
        ck.add(label, f"{problem} (remove it from the grid, or exclude it with a reason)")
        return
    s = checked.defaults
    origins = dict(checked.origins)
    noise_from = "defaults.noise"
    for entry in checked.entries:
        if _matches(entry.match, point):
            for path, value in entry.assignments:
                s = st.apply(s, path, value, root=ck.root)
            origins.update(entry.origins)
            if any(p.startswith("noise.") for p, _ in entry.assignments):
                noise_from = f"entries[{entry.index}].set.noise"
    for path, value in point.items():
        s = st.apply(s, path, value, root=ck.root)
        if path in checked.grid_keys:
            origins[path] = _grid_origin(checked, path, value)
    if not ck.noise_levels(s.noise, noise_from):
        return
    model = point["model"]
    if model not in kinds:
        kinds[model] = ref_kind(model)
    group_s = s
    overrides: dict[str, Any] = {}
    for path in in_container_axes(be.name, checked.grid, kinds[model], s.decode.align):
        first = checked.grid[path][0]
        if st.get(s, path) != first:
            overrides[path.split(".", 1)[1]] = st.get(s, path)
        group_s = st.apply(group_s, path, first)
        origins[path] = _grid_origin(checked, path, first)  # the group decodes with the axis' first value
    gdict = group_dict(group_s, kinds[model])
    key = json.dumps(gdict, sort_keys=True)
    group = groups.setdefault(key, {"dict": gdict, "spec": group_s, "conditions": [], "origins": origins})
    noise = s.noise
    levels: list[tuple[str, float | None]] = [("clean", None)] if noise.clean else []
    for kind in noise.types:
        levels += [(kind, float(snr)) for snr in sorted(noise.snr_db, reverse=True)]
    for kind, snr in levels:
        for repeat in range(s.repeats):
            group["conditions"].append(Condition(
                dataset=s.dataset, noise_type=kind, snr_db=snr, repeat=repeat,
                noise_files=noise.files if kind == "file" else None,
                babble_talkers=noise.babble_talkers if kind == "babble" else 4,
                limit=s.limit, audio_roots=tuple(s.audio_roots), decode=dict(overrides), axes=dict(point)))


def axis_roles(checked: CheckedFile, groups: list[Group] | tuple[Group, ...] = ()
               ) -> dict[str, dict[str, list[str]]]:
    """Per backend in the grid: which axes stay inside one container and which make new containers. An axis
    is inside when it is so for every group of that backend (a CTC model's beam-size axis makes containers)."""
    out = {}
    for backend in checked.grid.get("backend", []):
        axes = in_container_axes(backend, checked.grid)
        for g in groups:
            if g.backend == backend:
                kept = in_container_axes(backend, checked.grid, ref_kind(g.model), g.spec_settings.decode.align)
                axes = [p for p in axes if p in kept]
        inside = ["dataset", *axes]
        if "limit" in checked.grid:
            inside.append("limit")
        out[backend] = {"in_container": inside, "per_group": [p for p in checked.grid if p not in inside]}
    return out


def resolved_json(checked: CheckedFile, file: Path, root: Path, groups: list[Group], excluded: list[dict]
                  ) -> dict[str, Any]:
    """The experiment as resolved (JSON-able), for the sweep manifest."""
    grid = {checked.grid_keys.get(p, f"{p}s"): v for p, v in checked.grid.items()}
    resolved = {
        "name": checked.name,
        "description": checked.description,
        "file": str(file),
        "root": str(root),
        "defaults": st.to_dict(checked.defaults),
        "grid": grid,
        "axes": dict(checked.grid),
        "axis_roles": axis_roles(checked, groups),
        "entries": [{"match": e.match, "set": e.written} for e in checked.entries],
        "exclude": [{**m, "reason": r} for m, r in checked.exclusions],
        "excluded": excluded,
        "groups": [{**g.settings(), "conditions": [c.settings() for c in g.conditions]} for g in groups],
        "counts": {"groups": len(groups), "conditions": sum(len(g.conditions) for g in groups),
                   "excluded": len(excluded)},
    }
    json.dumps(resolved)  # a bug, not a user error, if this fails: the manifest must be JSON
    return resolved
