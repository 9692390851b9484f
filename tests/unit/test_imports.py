"""The import structure the layout promises (README "Layout"): commands are leaves that only cli.py imports."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT


def _imports(path: Path) -> set[str]:
    """The absolute module names a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_module_but_the_cli_imports_a_command_handler():
    """Orchestration lives below the commands (runner/run.py, runner/sweep.py, runner/images/make.py,
    runner/report/make.py): a command handler is imported by runner/cli.py alone, never by a library module,
    another command, the bench or the fleet."""
    files = [p for p in [*(ROOT / "runner").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
             if p != ROOT / "runner" / "cli.py"]
    assert len(files) > 50
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.startswith("runner.commands."))
                 for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
