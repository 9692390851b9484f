"""What `edgeasr` imports when it starts (issue 26, item 2: a sweep's command start is wall that measures nothing).

Each check runs a fresh interpreter (an import is cached for the life of one) and reads its sys.modules: the
report's stack (matplotlib: about a second of CPU on a 2-core host) is imported when the report is drawn, not
at the start of a sweep or a run; `edgeasr --help` imports no command's module; shell completion only when the
shell asks for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (this checkout's runner first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "containers" / "common"), str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("_ARGCOMPLETE", None)
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


REPORT_STACK = ("matplotlib", "runner.report.make", "runner.report.figures")


@pytest.mark.parametrize("module", ["runner.cli", "runner.execute", "runner.sweep", "runner.commands.sweep",
                                    "runner.commands.run"])
def test_starting_a_sweep_or_a_run_imports_no_report_stack(module):
    held = modules_after(f"import {module}")
    assert module in held  # the probe ran this checkout's module
    assert not [m for m in REPORT_STACK if m in held], module


def test_the_parser_of_one_command_imports_only_that_command():
    """`edgeasr sweep ...` builds sweep's options only: no other command's module (report, compare, images,
    check-image import what they run), no completion machinery."""
    held = modules_after("from runner import cli\ncli._parser([cli.command_named(['-v', 'sweep', 'x.yaml'])])")
    commands = {m for m in held if m.startswith("runner.commands.")}
    assert commands == {"runner.commands.sweep"}
    assert not [m for m in REPORT_STACK if m in held]


def test_help_imports_no_command():
    held = modules_after("from runner import cli\ncli._parser([])")
    assert not {m for m in held if m.startswith("runner.commands.")}
    assert "matplotlib" not in held and "docker" not in held and "numpy" not in held


def test_command_named_finds_the_command_past_the_top_level_flags():
    from runner import cli

    assert cli.command_named(["-v", "-q", "sweep", "run"]) == "sweep"
    assert cli.command_named(["check-image", "--backend", "x"]) == "check-image"
    assert cli.command_named(["--help"]) is None
    assert cli.command_named(["nosuch", "sweep"]) is None  # argparse names the bad choice
    assert cli.command_named(["--", "sweep"]) is None


def test_the_full_parser_still_has_every_command_s_options():
    """Completion and the tests build every command (no argument): each subparser has its own options."""
    import argparse

    from runner import cli

    parser = cli._parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) == set(cli.COMMANDS)
    for name, sub in subs.items():
        own = [a for a in sub._actions if a.option_strings and a.dest not in ("help", "verbose", "quiet")]
        positional = [a for a in sub._actions if not a.option_strings]
        assert own or positional, name


def test_version_is_read_only_when_asked(capsys):
    from runner import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("edgeasr ")


def test_the_program_ends_after_its_output_and_exit_hooks_without_the_interpreters_teardown(tmp_path):
    """Issue 26 item 2: the interpreter's teardown after a sweep (clearing every module of the report's stack and
    its objects) measured 0.2-0.5 s of the command's wall. ``edgeasr`` as a program (runner.cli.run) flushes its
    output, runs the exit hooks (atexit: a sampler left running is stopped there) and ends with its code; objects
    are not torn down one by one. main() itself returns as ever (the tests call it)."""
    root = Path(__file__).resolve().parents[2]
    marks = {name: tmp_path / name for name in ("hook", "teardown")}
    script = (
        "import atexit, pathlib, sys\n"
        "from runner import cli\n"
        f"atexit.register(lambda: pathlib.Path({str(marks['hook'])!r}).write_text('ran'))\n"
        "class Torn:\n"
        f"    def __del__(self): pathlib.Path({str(marks['teardown'])!r}).write_text('torn')\n"
        "kept = Torn()\n"
        "sys.argv = ['edgeasr', 'schema', 'experiment']\n"
        "cli.run()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "containers" / "common"), str(root)])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"]  # the whole output came out through the pipe (flushed)
    assert marks["hook"].read_text() == "ran" and not marks["teardown"].exists()
    bad = script.replace("'schema', 'experiment'", "'sweep', 'no-such-file.yaml'")
    bad = subprocess.run([sys.executable, "-c", bad], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "edgeasr:" in bad.stderr  # a command's own exit code and message kept
