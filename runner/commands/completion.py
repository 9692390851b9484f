"""Shell completion through argcomplete, when it is installed (``pip install edgeasr[completion]``).

``edgeasr`` works the same without it: ``enable`` returns at once when argcomplete is missing. The
completers for settings come from their metadata (runner/settings.py): a choice completes its choices, a
backend the backend table's names, a folder a folder; experiment names complete from experiments/*.yaml.
Setting a completer is only an attribute on an argparse action, so nothing here needs argcomplete itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import settings as st
from .. import backends


def _choices(values: Iterable[str]) -> Callable[..., list[str]]:
    values = tuple(values)
    return lambda prefix="", **_: [v for v in values if v.startswith(prefix)]


def _folders(prefix: str = "", **_) -> list[str]:
    """Folders under the prefix's folder (argcomplete's DirectoriesCompleter, without importing it)."""
    base = Path(prefix).expanduser()
    parent = base if prefix.endswith("/") else base.parent
    try:
        entries = sorted(p for p in parent.iterdir() if p.is_dir())
    except OSError:
        return []
    typed = prefix[:prefix.rfind("/") + 1]  # the folder part as typed ("./", "~/x/", ""): kept as it was
    shown = [typed + p.name + "/" for p in entries]
    return [s for s in shown if s.startswith(prefix)]


def _experiments(prefix: str = "", **_) -> list[str]:
    names = sorted(p.stem for p in Path("experiments").glob("*.yaml"))
    return [n for n in names if n.startswith(prefix)]


def _models(prefix: str = "", parsed_args: argparse.Namespace | None = None, **_) -> list[str]:
    """``--model``: model names (installed folders in --models-dir, installable, shipped in an image, hub
    names), or folders where the prefix is a path (starts with /, . or ~)."""
    if prefix.startswith(("/", ".", "~")):
        return _folders(prefix)
    from ..models.hub import HF_REPOS, HUB_REPOS
    from ..models.resolve import PACKAGED, default_models_dir, is_model_dir

    folder = getattr(parsed_args, "models_dir", None) or default_models_dir()
    try:
        installed = [p.name for p in Path(folder).iterdir() if is_model_dir(p)]
    except OSError:
        installed = []
    bundled = [n for b in backends.BACKENDS.values() for n in b.bundled_models]
    names = dict.fromkeys([*sorted(installed), *PACKAGED, *bundled, *HUB_REPOS, *HF_REPOS])
    return [n for n in names if n.startswith(prefix)]


def setting_completer(rule: st.Rule) -> Callable[..., list[str]] | None:
    """The completer for one setting's flag, from its Rule; None where any text goes."""
    if rule.flag == "--model":
        return _models
    if rule.kind == "choice":
        return _choices(rule.choices)
    if rule.kind == "backend":
        return _choices(backends.BACKENDS)
    if rule.kind in ("folder", "list") or rule.flag == "--data":
        return _folders
    return None


def attach_completers(parser: argparse.ArgumentParser) -> None:
    """Give every settings flag (in any subcommand) its completer, and ``sweep``'s experiment its names."""
    by_flag = {lf.rule.flag: lf.rule for lf in st.LEAVES.values() if lf.rule.flag}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                attach_completers(sub)
                if name == "sweep":
                    for sub_action in sub._actions:
                        if not sub_action.option_strings and sub_action.dest in ("experiment", "file"):
                            sub_action.completer = _experiments  # type: ignore[attr-defined]
            continue
        for flag in action.option_strings:
            if flag in by_flag and (completer := setting_completer(by_flag[flag])) is not None:
                action.completer = completer  # type: ignore[attr-defined]


def enable(parser: argparse.ArgumentParser) -> bool:
    """Answer a completion request when the shell made one (argcomplete exits the process then); False when
    argcomplete is not installed, True when it is (and this was an ordinary call)."""
    try:
        import argcomplete
    except ImportError:
        return False
    attach_completers(parser)
    argcomplete.autocomplete(parser)
    return True
