"""Export a Hugging Face Whisper folder to ONNX inside the onnxruntime image (the host has no torch).

The export (torch.onnx tracing of encoder + decoder with past key values, then onnxruntime's
dynamic int8 quantization) is done once per model and cached in the models folder under a
content hash of the weights, configs and the exporter's own source (runner.models.resolve.onnx_dir),
so a changed model or exporter gets a new folder and an unchanged one is reused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..backends import BACKENDS
from ..errors import UserError
from ..launch.tool_container import STAGING_TARGET, run_tool
from ..launch.paths import make_readable
from ..trust.untrusted import say

EXPORTER = BACKENDS["onnxruntime"].build_dir + "/edgeasr_backend_onnxruntime.py"  # under containers/


def export_onnx(hf_dir: Path, out_dir: Path, image: str | None = None, log=say) -> Path:
    """Run the image's exporter, confined like every backend container: hf_dir (read-only) -> out_dir (made whole
    or not at all; the container writes only into a staging folder of its own)."""
    image = image or BACKENDS["onnxruntime"].image
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    log(f"{hf_dir.name}: exporting to ONNX (fp32, fp16, int8) in {image}; once per model, about a minute")
    staging = run_tool(image, ["/opt/venv/bin/python", "-m", "edgeasr_backend_onnxruntime", "export", "/in",
                               f"{STAGING_TARGET}/{out_dir.name}"],
                       inputs={hf_dir: "/in"}, staging_parent=out_dir.parent,
                       what=f"the ONNX export of {hf_dir.name}",
                       image_hint="build it with `make images BACKENDS=onnxruntime`")
    try:
        result = staging / out_dir.name
        if not (result / "edgeasr-onnx.json").is_file():
            raise UserError(f"the ONNX export of {hf_dir.name} left no {out_dir}/edgeasr-onnx.json")
        make_readable(result)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(result, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
