"""Fixtures for the telemetry tests: the fake pynvml module, the fake
tegrastats on PATH, and a fake powercap (RAPL) tree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from fake_jetson import use_fake_tegrastats

HERE = Path(__file__).resolve().parent


def _load_fake_pynvml() -> ModuleType:
    # Loaded by path: the test folders are not packages (--import-mode=importlib).
    spec = importlib.util.spec_from_file_location("edgeasr_tests_fake_pynvml", HERE / "fake_pynvml.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FAKE_PYNVML = _load_fake_pynvml()


@pytest.fixture
def fake_pynvml() -> ModuleType:
    """The fake pynvml module (build instances with ``FakePynvml(...)``)."""
    return FAKE_PYNVML


@pytest.fixture
def fake_tegrastats_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the FAKE tegrastats first on PATH; returns its path."""
    return use_fake_tegrastats(monkeypatch)


def make_rapl_tree(root: Path, domains: dict[str, tuple[str, int, int]]) -> Path:
    """Create a fake /sys/class/powercap: {dir: (name, energy_uj, max_range_uj)}."""
    root.mkdir(parents=True, exist_ok=True)
    for entry, (name, energy_uj, max_range_uj) in domains.items():
        d = root / entry
        d.mkdir()
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return root


@pytest.fixture
def rapl_tree(tmp_path: Path):
    """Factory for fake powercap trees under tmp_path."""

    def factory(domains: dict[str, tuple[str, int, int]]) -> Path:
        return make_rapl_tree(tmp_path / "powercap", domains)

    return factory
