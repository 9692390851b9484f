"""The one table that maps edgeasr's quant names to each inference library's own, per device.

A combination missing from the table is one the device cannot run; it is refused
before any container starts, naming what that device supports. (CTranslate2 on
CPU has no float16 kernels: asking for it raises inside the library, so we refuse first.)
"""

from __future__ import annotations

from .errors import UserError

QUANTS = ("fp32", "fp16", "bf16", "int8")
DEVICES = ("cpu", "cuda")

# (library, device) -> {edgeasr quant: library compute type}
QUANT_TABLE: dict[tuple[str, str], dict[str, str]] = {
    ("ctranslate2", "cpu"): {"fp32": "float32", "int8": "int8"},
    ("ctranslate2", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8_float16"},
    # torch: fp16 kernels are CUDA-only in practice; int8 is dynamic quantization on CPU (qint8 Linear
    # weights) and bitsandbytes LLM.int8 on CUDA.
    ("torch", "cpu"): {"fp32": "float32", "bf16": "bfloat16", "int8": "dynamic_int8"},
    ("torch", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "bnb_int8"},
    # ONNX Runtime: the exported graph in float32, converted to float16 (CUDA only: the CPU provider lacks
    # most fp16 kernels), or ONNX Runtime's dynamic quantization (int8 MatMul weights, activations on the fly).
    ("onnxruntime", "cpu"): {"fp32": "float32", "int8": "dynamic_int8"},
    ("onnxruntime", "cuda"): {"fp32": "float32", "fp16": "float16"},
    # pocketsphinx: one precision, the float computation of its bundled continuous/PTM acoustic model.
    ("pocketsphinx", "cpu"): {"fp32": "float32"},
}


def supported_quants(library: str, device: str) -> list[str]:
    return [q for q in QUANTS if q in QUANT_TABLE.get((library, device), {})]


def quant_problem(library: str, device: str, quant: str) -> str | None:
    """Why (library, device, quant) cannot run, or None when it can."""
    if quant not in QUANTS:
        return f"unknown quant {quant!r}; choose one of {', '.join(QUANTS)}"
    table = QUANT_TABLE.get((library, device))
    if table is None:
        return f"{library} has no {device} support in edgeasr"
    if quant not in table:
        return (f"quant {quant!r} cannot run with {library} on {device}; "
                f"{device} supports: {', '.join(supported_quants(library, device))}")
    return None


def resolve_quant(library: str, device: str, quant: str) -> str:
    problem = quant_problem(library, device, quant)
    if problem:
        raise UserError(problem)
    return QUANT_TABLE[(library, device)][quant]
