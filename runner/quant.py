"""edgeasr's quant names, and the by-library quant look-ups kept for their callers.

The quant maps themselves live in the backend table (runner/launch/backends.py): each Backend row reaches
its own (``be.quants(device)``, ``be.quant_problem(device, quant)``, ``be.backend_quant(device, quant)``).
These wrappers answer by library name from the rows that run that library.
"""

from __future__ import annotations

from .errors import UserError
from .launch.backends import DEVICES, QUANTS, library_quant_map, library_quant_problem

__all__ = ["DEVICES", "QUANTS", "quant_problem", "resolve_quant"]


def quant_problem(library: str, device: str, quant: str) -> str | None:
    """Why (library, device, quant) cannot run, or None when it can."""
    return library_quant_problem(library, device, quant)


def resolve_quant(library: str, device: str, quant: str) -> str:
    """The library's compute type for (device, quant); a UserError naming what the device supports."""
    problem = quant_problem(library, device, quant)
    if problem:
        raise UserError(problem)
    return library_quant_map(library)[device][quant]  # type: ignore[index]
