"""A child image's build gets wheels for what its parent does not pin (onnx on top of the torch stack)."""

from runner.backends import BACKENDS
from runner.images.build import child_extras


def test_onnxruntime_image_gets_onnx_but_not_the_torch_stack():
    extras = child_extras(BACKENDS["onnxruntime"])
    assert "onnx==1.23.2" in extras
    assert not any(e.startswith(("torch==", "soundfile==", "soxr==")) for e in extras)  # the parent pins these


def test_an_image_without_a_parent_has_no_extras():
    assert child_extras(BACKENDS["pocketsphinx"]) == []
