"""The container side runs on Python 3.8: the JetPack 5 (L4T r35) images ship Python 3.8.

Two checks, both in CI (`make test`):
- statically, `vermin` targeting 3.8 over every container-side module (the entrypoint package and each
  backend adapter): no syntax or standard-library feature newer than 3.8 (pattern matching, `dict | dict`,
  `str.removeprefix`, `zip(strict=)`, `functools.cache`, ...). vermin does not evaluate annotations, so every
  such module must also defer them (`from __future__ import annotations`): `list[int]` or `int | None` in an
  annotation is then never evaluated on 3.8. A test below proves that the check fails on 3.9+ code.
- at run time, on a real Python 3.8: the entrypoint's unit tests (test_entrypoint.py, test_noise.py, the
  adapters against stand-in libraries, test_adapter_compat.py, and the whisperx VAD build step,
  test_store_vad_model.py) and an
  import of every adapter module (class bodies, module-level code), in `.venv-py38`, which `make venv-py38`
  makes from the oldest Python this machine provides. The CI machine has no `python3.8` from Debian (Debian 12
  ships only 3.11 and apt offers nothing older); it has pyenv's 3.8.18 (also 3.6 and 3.7, older than the
  contract needs), which the Makefile finds. Where no 3.8 exists the runtime test is skipped with that reason;
  the static check still runs.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"
CONTAINER_SIDE = sorted([*(CONTAINERS / "common" / "edgeasr_entrypoint").glob("*.py"),
                         *CONTAINERS.glob("*/edgeasr_backend_*.py"),
                         CONTAINERS / "whisperx" / "store_vad_model.py"])  # a build step of Dockerfile.jetson-r35
ADAPTERS = sorted(CONTAINERS.glob("*/edgeasr_backend_*.py"))
TARGET = "3.8"
PY38 = ROOT / ".venv-py38" / "bin" / "python"


def vermin(*paths: Path) -> subprocess.CompletedProcess:
    """vermin over the files, targeting 3.8 and newer: exit 1 and one line per feature when a file needs more."""
    exe = Path(sys.executable).with_name("vermin")  # the console script beside this Python (no `-m vermin`)
    return subprocess.run([str(exe) if exe.exists() else "vermin", "-q", f"-t={TARGET}-", "--violations", "--no-tips",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_the_container_side_is_found():
    names = {p.name for p in CONTAINER_SIDE}
    assert {"__main__.py", "job.py", "audio.py", "noise.py"} <= names
    assert {p.parent.name for p in ADAPTERS} >= {"faster-whisper", "whisperx", "transformers"}


def test_container_side_needs_nothing_newer_than_python_3_8():
    result = vermin(*CONTAINER_SIDE)
    assert result.returncode == 0 and not result.stdout.strip(), \
        f"features newer than Python {TARGET} on the container side:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", CONTAINER_SIDE, ids=[f"{p.parent.name}/{p.name}" for p in CONTAINER_SIDE])
def test_container_module_defers_its_annotations(path):
    """vermin does not evaluate annotations; deferring them makes `list[int]` / `X | None` safe on 3.8."""
    tree = ast.parse(path.read_text())
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.AnnAssign)) for node in ast.walk(tree)):
        return  # nothing annotated (e.g. __init__.py)
    assert any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(a.name == "annotations" for a in node.names) for node in tree.body), \
        "add `from __future__ import annotations` (annotations evaluated at run time may need Python >= 3.9)"


NEWER_THAN_38 = {
    "str.removeprefix": 's = "abc".removeprefix("a")\n',
    "dict union": "merged = {'a': 1} | {'b': 2}\n",
    "pattern matching": "def f(v):\n    match v:\n        case 1:\n            return 2\n",
    "zip(strict=)": "def g(a, b):\n    return list(zip(a, b, strict=True))\n",
    "functools.cache": "import functools\n\n@functools.cache\ndef h():\n    return 1\n",
}


@pytest.mark.parametrize("feature", sorted(NEWER_THAN_38))
def test_the_check_fails_on_code_that_needs_python_3_9_or_newer(tmp_path, feature):
    snippet = tmp_path / "snippet.py"
    snippet.write_text(NEWER_THAN_38[feature])
    result = vermin(snippet)
    assert result.returncode != 0 and "snippet.py" in result.stdout, (feature, result.stdout, result.stderr)


RUNTIME_TESTS = ["tests/unit/test_entrypoint.py", "tests/unit/test_noise.py", "tests/unit/test_adapter_compat.py",
                 "tests/unit/test_transformers_decode.py",
                 "tests/unit/test_store_vad_model.py", "tests/unit/test_stream_entry.py"]
IMPORT_ADAPTERS = """
import importlib.util, sys
assert sys.version_info[:2] == (3, 8), sys.version
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(path.rsplit('/', 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    print('imported', path)
"""


@pytest.mark.skipif(not PY38.exists(), reason="no .venv-py38: `make venv-py38` makes it where a Python 3.8 "
                    "exists (python3.8 on PATH or pyenv's); Debian 12 itself has only 3.11")
def test_entrypoint_unit_tests_pass_on_python_3_8():
    version = subprocess.run([str(PY38), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == TARGET, f".venv-py38 runs Python {version}, not {TARGET}: remake it (make venv-py38)"
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS / "common")}  # as in the images (/opt/edgeasr)
    imported = subprocess.run([str(PY38), "-c", IMPORT_ADAPTERS, *map(str, ADAPTERS)], capture_output=True,
                              text=True, cwd=ROOT, timeout=120, env=env)
    assert imported.returncode == 0, imported.stderr
    tests = subprocess.run([str(PY38), "-m", "pytest", "-q", "-p", "no:cacheprovider", *RUNTIME_TESTS],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert tests.returncode == 0, f"on Python {TARGET}:\n{tests.stdout[-4000:]}{tests.stderr[-2000:]}"
    assert " passed" in tests.stdout and " failed" not in tests.stdout, tests.stdout[-2000:]
