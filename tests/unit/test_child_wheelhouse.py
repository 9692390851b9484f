"""A child image's build gets wheels for what its parent does not pin (onnx on top of the torch stack).

A child image's wheelhouse (issue 26 item 3): what it adds to its parent's packages is found by resolving the
parent's requirements and then the parent's with the child's extras (pip through the index: the torch stack's
resolution took 40 to 50 s on the 2-core host, and the fills of transformers and onnxruntime 95 and 91 s of a bare
`make test`'s image builds). The parent's resolution is made once per process, and a child whose extras the parent's
resolution already holds at their pins (transformers on torch-base) asks pip nothing more and downloads nothing.

pip is replaced by a recorder here: what is checked is which resolutions and downloads are asked for; the real ones
run in every `make test` (test-images)."""

from __future__ import annotations

import pytest

from runner.backends import BACKENDS
from runner.images import build as images
from runner.images.build import child_extras


def test_onnxruntime_image_gets_onnx_but_not_the_torch_stack():
    extras = child_extras(BACKENDS["onnxruntime"])
    assert "onnx==1.23.2" in extras
    assert not any(e.startswith(("torch==", "soundfile==", "soxr==")) for e in extras)  # the parent pins these


def test_an_image_without_a_parent_has_no_extras():
    assert child_extras(BACKENDS["pocketsphinx"]) == []


PARENT = {"torch": "2.8.0", "transformers": "4.57.6", "tokenizers": "0.22.2", "onnxruntime": "1.32.0"}


@pytest.fixture
def pip(monkeypatch, tmp_path):
    """Records each resolution (the requirements' text) and each download (its pins) of fill_wheelhouse."""
    calls: dict[str, list] = {"resolve": [], "download": []}
    for name in ("transformers", "onnxruntime"):
        monkeypatch.setattr(type(BACKENDS[name]), "wheelhouse", property(lambda self: tmp_path / self.name))
    monkeypatch.setattr(images, "_PARENT_RESOLUTIONS", {})

    def resolve(image, text, arch="amd64"):
        calls["resolve"].append(text)
        pins = images.pinned_versions(text)
        return {**PARENT, **({"onnx": pins["onnx"], "protobuf": "6.33.0"} if "onnx" in pins else {})}

    def run_pip(image, args, arch="amd64"):
        if args[0] == "download":
            calls["download"].append(images.pinned_versions(open(args[args.index("-r") + 1]).read()))

    monkeypatch.setattr(images, "resolve_pins", resolve)
    monkeypatch.setattr(images, "_pip", run_pip)
    return calls


def test_the_parents_resolution_is_asked_once_for_its_children(pip):
    for name in ("onnxruntime", "transformers"):
        images.fill_wheelhouse(BACKENDS[name], log=lambda m: None, only=images.child_extras(BACKENDS[name]))
    parent_text = images.requirements_text(images.IMAGES["torch-base"])
    assert pip["resolve"].count(parent_text) == 1, "torch-base's requirements resolved more than once"
    # onnxruntime's extras resolved with its parent's; onnx and its dependency are all it downloads
    assert len(pip["resolve"]) == 2 and "onnx==" in pip["resolve"][1]
    assert pip["download"] == [{"onnx": images.child_extras(BACKENDS["onnxruntime"])[2].split("==")[1],
                                "protobuf": "6.33.0"}]


def test_a_child_whose_extras_its_parent_holds_resolves_and_downloads_nothing_more(pip):
    lines = []
    images.fill_wheelhouse(BACKENDS["transformers"], log=lines.append, only=images.child_extras(BACKENDS["transformers"]))
    assert len(pip["resolve"]) == 1 and pip["download"] == []  # the parent's resolution only
    assert "torch-base holds them" in lines[-1] and "transformers==4.57.6" in lines[-1]
