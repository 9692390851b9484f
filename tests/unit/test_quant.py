"""The quant table: fp16 on CPU is refused, naming what the device supports."""

import pytest

from runner.errors import UserError
from runner.launch.backends import BACKENDS
from runner.quant import quant_problem, resolve_quant


def test_ctranslate2_mapping():
    assert resolve_quant("ctranslate2", "cpu", "int8") == "int8"
    assert resolve_quant("ctranslate2", "cpu", "fp32") == "float32"
    assert resolve_quant("ctranslate2", "cuda", "int8") == "int8_float16"
    assert resolve_quant("ctranslate2", "cuda", "fp16") == "float16"


def test_fp16_on_cpu_names_the_supported_quants():
    with pytest.raises(UserError) as exc:
        resolve_quant("ctranslate2", "cpu", "fp16")
    assert "cpu supports: fp32, int8" in str(exc.value)
    assert BACKENDS["faster-whisper"].quants("cpu") == ("fp32", "int8")


def test_unknown_quant_lists_choices():
    assert "choose one of fp32, fp16, bf16, int8" in quant_problem("ctranslate2", "cpu", "int4")
