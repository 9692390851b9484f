"""The experiment files' JSON Schema (edgeasr schema experiment) and shell completion (argcomplete)."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner import cli, settings as st
from runner.commands.completion import attach_completers, setting_completer
from runner.experiment.schema import experiment_schema

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


def _errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """A small validator for the keywords experiment_schema uses (type, enum, anyOf, properties,
    additionalProperties, required, items, minItems, uniqueItems, minimum, exclusiveMinimum, minLength, pattern):
    the check when jsonschema is not installed."""
    out: list[str] = []
    if "anyOf" in schema:
        if all(_errors(value, s, path) for s in schema["anyOf"]):
            out.append(f"{path}: matches none of anyOf")
        return out
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
                  "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                  "null": lambda v: v is None,
                  "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                  "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if not any(checks[k](value) for k in kinds):
            return [f"{path}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                out += _errors(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}.{key}: unknown key")
        out += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(value):
            out.append(f"{path}: repeated items")
        for i, item in enumerate(value):
            out += _errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: {value} < {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{path}: {value} <= {schema['exclusiveMinimum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{path}: too short")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: {value!r} does not match {schema['pattern']}")
    return out


def validate(document: Any) -> list[str]:
    """Every problem the schema finds, by jsonschema when installed, else by _errors."""
    schema = experiment_schema()
    try:
        import jsonschema
    except ImportError:
        return _errors(document, schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_shipped_experiment_file_is_valid_under_the_schema(path):
    """The schema admits every experiments/*.yaml the loader admits (an editor must not flag a good file)."""
    assert validate(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("bad, where", [
    ({"grid": {"quants": ["fp33"]}}, "grid.quants"),
    ({"defaults": {"decode": {"beam_size": 0}}}, "beam_size"),
    ({"defaults": {"warmpu": 1}}, "warmpu"),
    ({"grid": {"decode.beam_size": []}}, "decode.beam_size"),
    ({"exclude": [{"model": "medium"}]}, "reason"),
    ({"entries": [{"match": {"model": "base"}, "set": {"model": "tiny"}}]}, "model"),
])
def test_the_schema_rejects_what_the_loader_rejects(bad, where):
    """A wrong choice, a value out of range, an unknown key, an empty axis, an exclusion without a reason and an
    entry that sets a grid axis are each flagged, at their key."""
    problems = validate(bad)
    assert problems and any(where in p for p in problems), problems


def test_the_schema_follows_the_settings_metadata():
    """Every setting is in defaults with its default and help; every sweepable setting is a grid axis."""
    schema = experiment_schema()
    defaults = schema["properties"]["defaults"]["properties"]
    assert defaults["decode"]["properties"]["beam_size"]["minimum"] == 1
    assert defaults["decode"]["properties"]["beam_size"]["default"] == 5
    assert "interval_ms" in defaults["telemetry"]["properties"]
    grid = schema["properties"]["grid"]["properties"]
    for path, lf in st.LEAVES.items():
        head = path.split(".")[0]
        assert head in defaults
        if "." in path and not lf.rule.axis:
            assert path in grid


def test_schema_command_prints_json(capsys, tmp_path):
    """`edgeasr schema experiment` prints the schema; --out writes it."""
    assert cli.main(["schema", "experiment"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "edgeasr experiment file"
    assert cli.main(["schema", "experiment", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == experiment_schema()


def test_completers_come_from_the_settings_metadata():
    """--quant completes quants, --backend backend names, --device its choices; a free text flag has none."""
    assert "int8" in setting_completer(st.leaf("quant").rule)(prefix="in")
    assert setting_completer(st.leaf("backend").rule)(prefix="faster") == ["faster-whisper"]
    assert setting_completer(st.leaf("decode.beam_size").rule) is None
    parser = cli._parser()
    attach_completers(parser)
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    device = next(a for a in run._actions if "--device" in a.option_strings)
    assert device.completer(prefix="c") == ["cpu", "cuda"]


def test_edgeasr_works_without_argcomplete(monkeypatch, capsys):
    """With argcomplete missing, the command parses and runs as before (completion is optional)."""
    import builtins

    real = builtins.__import__

    def no_argcomplete(name, *args, **kwargs):
        if name == "argcomplete":
            raise ImportError("no argcomplete")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_argcomplete)
    assert cli.main(["schema", "experiment"]) == 0
    assert capsys.readouterr().out.startswith("{")


def test_argcomplete_completes_quants_and_experiment_names(tmp_path):
    """With argcomplete installed, the shell's request is answered: `run --quant ` lists the quants and
    `sweep sm` the experiment smoke."""
    pytest.importorskip("argcomplete", reason="the optional argcomplete is not installed")
    import os
    import subprocess
    import sys

    def complete(line: str) -> list[str]:
        out = tmp_path / "completions"
        env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE": "1",
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "containers" / "common")])}
        subprocess.run([sys.executable, "-m", "runner.cli"], env=env, cwd=ROOT, timeout=60, check=False,
                       capture_output=True)
        return out.read_text().replace("\x0b", " ").split()

    assert complete("edgeasr run --quant ") == ["fp32", "fp16", "bf16", "int8"]
    assert complete("edgeasr sweep sm") == ["smoke"]
