"""Find an experiment file and read its YAML: safe, a key given twice refused, every read problem a UserError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError


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


def find_file(path: str | Path, root: Path) -> Path:
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


def read_yaml(file: Path) -> Any:
    try:
        return yaml.load(file.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = f"{file.name}: not valid YAML: {exc.problem}{where}"
        raise UserError(f"{file} cannot be read:", problems=[problem]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{file} cannot be read:", problems=[f"{file.name}: not valid YAML: {exc}"]) from None
