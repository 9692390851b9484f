"""The backend table owns everything backend-specific: each row's quant map, capabilities and hub naming.

OLD_QUANT_TABLE is the (library, device) -> {quant: library compute type} literal that runner/quant.py held
before the maps moved into the rows: the rows must give exactly these mappings, no more and no fewer.
"""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.launch import backends
from runner.launch.backends import BACKENDS
from runner.quant import DEVICES, QUANTS, quant_problem, resolve_quant

OLD_QUANT_TABLE: dict[tuple[str, str], dict[str, str]] = {
    ("ctranslate2", "cpu"): {"fp32": "float32", "int8": "int8"},
    ("ctranslate2", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8_float16"},
    ("torch", "cpu"): {"fp32": "float32", "bf16": "bfloat16", "int8": "dynamic_int8"},
    ("torch", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "bnb_int8"},
    ("onnxruntime", "cpu"): {"fp32": "float32", "int8": "dynamic_int8"},
    ("onnxruntime", "cuda"): {"fp32": "float32", "fp16": "float16"},
    ("pocketsphinx", "cpu"): {"fp32": "float32"},
}


def test_the_generic_names_are_unchanged():
    """QUANTS and DEVICES keep their order: messages list them in it."""
    assert QUANTS == ("fp32", "fp16", "bf16", "int8")
    assert DEVICES == ("cpu", "cuda")


@pytest.mark.parametrize("library, device", [(lib, dev) for lib in ("ctranslate2", "torch", "onnxruntime",
                                                                     "pocketsphinx", "espnet")
                                             for dev in ("cpu", "cuda")])
def test_the_library_wrappers_give_the_old_table(library, device):
    """quant_problem / resolve_quant by library name (spec.py and experiment.py call them so) answer as the
    old table did: a mapping where it had one, a refusal where it had none."""
    old = OLD_QUANT_TABLE.get((library, device), {})
    for quant in QUANTS:
        if quant in old:
            assert quant_problem(library, device, quant) is None
            assert resolve_quant(library, device, quant) == old[quant]
        else:
            assert quant_problem(library, device, quant)
            with pytest.raises(UserError):
                resolve_quant(library, device, quant)
