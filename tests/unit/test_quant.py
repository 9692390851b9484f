"""The quant table: fp16 on CPU is refused, naming what the device supports."""

import pytest

from runner.backends import BACKENDS
from runner.errors import UserError


def test_ctranslate2_mapping():
    fw = BACKENDS["faster-whisper"]
    assert fw.backend_quant("cpu", "int8") == "int8"
    assert fw.backend_quant("cpu", "fp32") == "float32"
    assert fw.backend_quant("cuda", "int8") == "int8_float16"
    assert fw.backend_quant("cuda", "fp16") == "float16"


def test_fp16_on_cpu_names_the_supported_quants():
    with pytest.raises(UserError) as exc:
        BACKENDS["faster-whisper"].backend_quant("cpu", "fp16")
    assert "cpu supports: fp32, int8" in str(exc.value)
    assert BACKENDS["faster-whisper"].quants("cpu") == ("fp32", "int8")


def test_unknown_quant_lists_choices():
    assert "choose one of fp32, fp16, bf16, int8" in BACKENDS["faster-whisper"].quant_problem("cpu", "int4")
