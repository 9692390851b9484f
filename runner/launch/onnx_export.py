"""Export a Hugging Face Whisper folder to ONNX inside the onnxruntime image (the host has no torch).

The export (torch.onnx tracing of encoder + decoder with past key values, then onnxruntime's
dynamic int8 quantization) is done once per model and cached in the models folder under a
content hash of the weights, configs and the exporter's own source (runner.models.onnx_dir),
so a changed model or exporter gets a new folder and an unchanged one is reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from docker.errors import APIError, ContainerError, ImageNotFound

from ..errors import UserError
from .backends import BACKENDS
from .docker_engine import MANAGED_LABEL, connect

EXPORTER = BACKENDS["onnxruntime"].build_dir + "/edgeasr_backend_onnxruntime.py"  # under containers/


def export_onnx(hf_dir: Path, out_dir: Path, image: str | None = None, log=print) -> Path:
    """Run the image's exporter: hf_dir (read-only) -> out_dir (made whole or not at all)."""
    image = image or BACKENDS["onnxruntime"].image
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    log(f"{hf_dir.name}: exporting to ONNX (fp32, fp16, int8) in {image}; once per model, about a minute")
    client = connect()
    try:
        client.containers.run(
            image, entrypoint=["/opt/venv/bin/python", "-m", "edgeasr_backend_onnxruntime", "export",
                               "/in", f"/out/{out_dir.name}"],
            volumes={str(hf_dir): {"bind": "/in", "mode": "ro"}, str(out_dir.parent): {"bind": "/out", "mode": "rw"}},
            user=f"{os.getuid()}:{os.getgid()}", network_disabled=True, remove=True,
            labels={MANAGED_LABEL: "1"}, environment={"HF_HUB_OFFLINE": "1", "HOME": "/tmp"})
    except ImageNotFound:
        raise UserError(f"image {image} is not present; build it with `make images BACKENDS=onnxruntime`") from None
    except (ContainerError, APIError) as exc:
        raise UserError(f"the ONNX export of {hf_dir.name} failed in {image}: {exc}") from None
    if not (out_dir / "edgeasr-onnx.json").is_file():
        raise UserError(f"the ONNX export of {hf_dir.name} left no {out_dir}/edgeasr-onnx.json")
    return out_dir
