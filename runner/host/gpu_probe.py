"""What a backend image's own libraries say about the GPU from inside one of its containers (`edgeasr doctor`).

A driver on the host and a runtime in the engine are not enough: the most common failure on a Jetson is a CPU-only
wheel inside the image (torch without CUDA, a CTranslate2 built without it), which loads, runs and measures the CPU.
So the doctor runs ``SCRIPT`` in each built image (confined like a run, with the GPU asked for where this host has
one): it prints one line, ``PREFIX`` + a JSON object, with each library's version, whether it was built with CUDA,
the devices it sees, their compute capability and the compute types it supports per device. ``SCRIPT`` runs on
every image's Python (3.8 on JetPack 5) and imports only what is there.

What comes back is the image's word, so ``parse`` takes only a JSON object of bounded size from the one line it
expects, and the doctor shows its strings through the terminal-safe printer.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "EDGEASR_GPU_PROBE "
#: The most of the probe's line the host reads (a well-behaved probe prints a few hundred bytes).
MAX_LINE_BYTES = 64 * 1024

SCRIPT = r'''
import json, sys
out = {"python": sys.version.split()[0]}
def short(exc):
    return ("%s: %s" % (type(exc).__name__, exc))[:300]
try:
    import ctranslate2 as c
    r = {"version": c.__version__}
    try:
        r["cuda_devices"] = c.get_cuda_device_count()
    except Exception as exc:
        r["cuda_error"] = short(exc)
    for dev in ("cpu", "cuda"):
        try:
            r["compute_types_" + dev] = sorted(c.get_supported_compute_types(dev))
        except Exception as exc:
            r["compute_types_%s_error" % dev] = short(exc)
    out["ctranslate2"] = r
except ImportError:
    pass
try:
    import torch
    r = {"version": torch.__version__, "cuda_build": torch.version.cuda}
    try:
        r["cuda_available"] = bool(torch.cuda.is_available())
        r["cuda_devices"] = torch.cuda.device_count() if r["cuda_available"] else 0
        r["devices"] = [{"name": torch.cuda.get_device_name(i),
                         "capability": "%d.%d" % torch.cuda.get_device_capability(i)}
                        for i in range(r["cuda_devices"])]
        if r["cuda_available"]:
            r["bf16"] = bool(torch.cuda.is_bf16_supported())
    except Exception as exc:
        r["cuda_error"] = short(exc)
    out["torch"] = r
except ImportError:
    pass
try:
    import onnxruntime as o
    out["onnxruntime"] = {"version": o.__version__, "providers": list(o.get_available_providers()),
                          "device": o.get_device()}
except ImportError:
    pass
try:
    import pocketsphinx
    version = getattr(pocketsphinx, "__version__", None)
    try:
        from importlib.metadata import version as dist_version
        version = version or dist_version("pocketsphinx")
    except Exception:
        pass
    out["pocketsphinx"] = {"version": version}
except ImportError:
    pass
print("''' + PREFIX + r'''" + json.dumps(out))
'''


def parse(output: str) -> dict[str, Any] | None:
    """The probe's JSON object from the container's output, or None when there is no well-formed line."""
    for line in output.splitlines():
        if not line.startswith(PREFIX) or len(line.encode("utf-8", "replace")) > MAX_LINE_BYTES:
            continue
        try:
            data = json.loads(line[len(PREFIX):])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return None


def cpu_only(probe: dict[str, Any], backend: str) -> list[str]:
    """Why the libraries of ``probe`` (parse's answer from a container of a ``backend`` image) cannot use a GPU
    whatever the host, one sentence each: a CPU-only torch build, or an onnxruntime backend's CPU wheel (no
    CUDAExecutionProvider). Empty where nothing says so; a CPU-only CTranslate2 is not told apart without a GPU
    (its device count is 0 either way)."""
    out = []
    torch, ort = probe.get("torch"), probe.get("onnxruntime")
    if isinstance(torch, dict) and not torch.get("cuda_build"):
        out.append(f"torch {torch.get('version')} is a CPU-only build")
    if isinstance(ort, dict) and backend == "onnxruntime" and \
            "CUDAExecutionProvider" not in [str(x) for x in ort.get("providers") or []]:
        out.append("onnxruntime has no CUDAExecutionProvider (the CPU wheel)")
    return out
