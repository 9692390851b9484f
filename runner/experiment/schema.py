"""A JSON Schema for experiment files, generated from the settings' metadata and the file's layout.

For editors (the YAML language server, VS Code, PyCharm) to complete keys and flag mistakes as they are
typed. Generated, never written by hand: each setting's type, range, choices, default and help come from its
``Rule`` in runner/settings.py, and the layout (``defaults``, ``grid``, ``entries``, ``exclude``, which grid
axes exist, which settings may be dotted axes) from runner/experiment/check.py, so a new setting is in the
schema the moment it exists. The loader stays the authority: it also checks what a schema cannot (a model
folder exists, an axis named twice, noise levels that need each other).
"""

from __future__ import annotations

from typing import Any

from .. import settings as st
from .. import backends
from .check import AXES, IMAGE_AXIS, SETTING_KEYS, TOP_KEYS, _NAME_RE, dotted_axes

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def rule_schema(rule: st.Rule, *, nullable: bool | None = None) -> dict[str, Any]:
    """The JSON Schema of one value under ``rule`` (type, range, choices); null admitted where the rule says."""
    kind = rule.kind
    if kind in ("int", "number"):
        out: dict[str, Any] = {"type": "integer" if kind == "int" else "number"}
        if rule.ge is not None:
            out["minimum"] = rule.ge
        if rule.gt is not None:
            out["exclusiveMinimum"] = rule.gt
    elif kind in ("str", "folder"):
        out = {"type": "string", "minLength": 1}
    elif kind == "bool":
        out = {"type": "boolean"}
    elif kind == "choice":
        out = {"enum": list(rule.choices)}
    elif kind == "backend":
        out = {"enum": list(backends.BACKENDS)}
    elif kind == "mem":
        out = {"anyOf": [{"type": "string", "pattern": st.MEM_SIZE_PATTERN}, {"type": "integer", "exclusiveMinimum": 0}]}
    elif kind == "gpus":
        one = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 0}]}
        out = {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}
    elif kind == "mode":  # a Jetson power mode: its id in nvpmodel.conf, or its name there
        out = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]}
    elif kind == "list":
        assert rule.item is not None
        out = {"type": "array", "items": rule_schema(rule.item), "uniqueItems": True}
    else:  # a new kind must be taught here; the test over every setting says which
        raise ValueError(f"no JSON Schema for setting kind {kind!r}")
    if nullable if nullable is not None else rule.null:
        out = or_null(out)
    return out


def or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` admitting null too, as directly as JSON Schema allows (a type list or an enum member rather
    than anyOf, so a validator reports a wrong value at its own key)."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def _described(lf: st.Leaf, schema: dict[str, Any]) -> dict[str, Any]:
    text = lf.rule.help + (f" ({lf.rule.unit})" if lf.rule.unit else "")
    out = {**schema, "description": f"{text}; default: {st.default_text(lf)}"}
    default = list(lf.default) if isinstance(lf.default, tuple) else lf.default
    if lf.rule.default_text is None:
        out["default"] = default
    return out


def leaf_schema(path: str) -> dict[str, Any]:
    """One setting by dotted path; a sweep names its model and quant, so a file may not set them to null."""
    lf = st.leaf(path)
    nullable = False if path in ("model", "quant") else None
    return _described(lf, rule_schema(lf.rule, nullable=nullable))


def settings_schema(keys: tuple[str, ...]) -> dict[str, Any]:
    """A settings mapping (``defaults``, an entry's ``set``) allowing ``keys``: each section a mapping of its
    own settings, each other key its setting's schema."""
    sections = st.sections()
    props: dict[str, Any] = {}
    for key in keys:
        if key in sections:
            props[key] = {"type": "object", "additionalProperties": False,
                          "description": (sections[key].__doc__ or "").strip().splitlines()[0],
                          "properties": {name: leaf_schema(f"{key}.{name}")
                                         for name in st.field_names(sections[key])}}
        else:
            props[key] = leaf_schema(key)
    return {"type": "object", "additionalProperties": False, "properties": props}


def _axis_values(path: str) -> dict[str, Any]:
    lf_schema = leaf_schema(path)
    return {"type": "array", "minItems": 1, "uniqueItems": True, "items": lf_schema,
            "description": f"values of {path} to sweep over: {lf_schema.get('description', '')}"}


def _match_schema(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An entry's match or an exclude rule: each axis a value or a list of values."""
    props: dict[str, Any] = {}
    for path in (*AXES.values(), "image", *dotted_axes()):
        one = leaf_schema(path)
        props[path] = {"anyOf": [one, {"type": "array", "minItems": 1, "items": one}]}
    return {"type": "object", "additionalProperties": False, "properties": {**props, **(extra or {})}}


def experiment_schema() -> dict[str, Any]:
    """The whole schema of an experiments/*.yaml file (JSON Schema 2020-12)."""
    grid = {axis: _axis_values(key) for axis, key in AXES.items()}
    grid[IMAGE_AXIS] = _axis_values("image")
    grid.update({path: _axis_values(path) for path in dotted_axes()})
    grid["targets"] = _axis_values("target")  # the fleet's axis, by its plural like the named axes
    exclude = _match_schema({"reason": {"type": "string", "minLength": 1,
                                        "description": "why this point is left out (recorded in the results)"}})
    exclude["required"] = ["reason"]
    props = {
        "name": {"type": "string", "pattern": _NAME_RE.pattern,
                 "description": "the sweep's name (default: the file's stem)"},
        "description": {"type": ["string", "null"], "description": "free text, kept in the manifest"},
        "defaults": {**settings_schema(st.field_names(st.Settings)),
                     "description": "settings for every grid point (runner/settings.py)"},
        "grid": {"type": "object", "additionalProperties": False, "properties": grid,
                 "description": "axes crossed with each other; any single-valued setting by its dotted path"},
        "entries": {"type": "array", "description": "applied in order over defaults to the grid points they match",
                    "items": {"type": "object", "additionalProperties": False, "required": ["set"],
                              "properties": {"match": _match_schema(), "set": settings_schema(SETTING_KEYS)}}},
        "exclude": {"type": "array", "items": exclude,
                    "description": "grid points left out, each with the reason recorded in the results"},
        "cluster": {"type": ["string", "null"],
                    "description": "the fleet's Ray head, ray://HOST:PORT (runner/fleet/); null: this machine"},
    }
    for section in ("defaults", "grid", "entries", "exclude"):  # `grid:` with everything commented out
        props[section] = or_null(props[section])
    assert tuple(props) == TOP_KEYS, "the schema's top keys follow check.TOP_KEYS"
    return {"$schema": SCHEMA_DIALECT, "title": "edgeasr experiment file",
            "description": "A sweep: defaults, a grid of axes, entries and exclusions (edgeasr sweep FILE).",
            "type": "object", "additionalProperties": False, "properties": props}
