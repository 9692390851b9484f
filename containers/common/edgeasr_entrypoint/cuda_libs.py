"""Which NVIDIA CUDA libraries an image holds, and their versions: what its ``org.edgeasr.cuda-libs`` label says.

A CUDA image's figures depend on the cuBLAS and cuDNN it loads as much as on CTranslate2 or torch, and where they
come from differs by base: NVIDIA's CUDA base keeps them on the linker path (``/usr/local/cuda/lib64``,
``libcublas.so.12 -> libcublas.so.12.8.4.1``), a torch base or the local Debian base in the ``nvidia-*-cu12``
wheels (``site-packages/nvidia/cublas/lib/libcublas.so.12``, the version only in the wheel's metadata). So the image
build runs ``python -m edgeasr_entrypoint.cuda_libs > CUDA_LIBS_FILE`` after its installs and `edgeasr images build`
labels what it printed (``name=version,...``, names as the wheels have them without ``nvidia-`` and ``-cuNN``:
``cublas=12.8.4.1,cuda-runtime=12.8.90,cudnn=9.10.2.21``). Every ``nvidia-*`` wheel is listed; of the libraries on
the linker path only those that no wheel already names (SYSTEM_LIBS), with the version of the file the soname
points at. Standard library only, Python 3.8 (it runs in every image).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from typing import Dict, Iterable, List, Optional, Tuple

#: A wheel of NVIDIA's CUDA libraries: ``nvidia-cublas-cu12`` -> ``cublas``; ``nvidia-cudnn-cu12`` -> ``cudnn``
#: (CUDA 13's drop the suffix: ``nvidia-cublas``). Only one that ships shared libraries counts (is_library_wheel):
#: ``nvidia-ml-py`` (NVML's Python binding) is no CUDA library.
WHEEL = re.compile(r"^nvidia-(?P<name>[a-z0-9][a-z0-9-]*?)(-cu\d+)?$")

#: The libraries a CUDA backend loads by soname, by the name the label gives them (the wheels' names): looked up
#: on the linker path where no wheel holds them (a CUDA base's system copies).
SYSTEM_LIBS: Dict[str, str] = {"cuda-runtime": "libcudart.so", "cublas": "libcublas.so", "cudnn": "libcudnn.so"}

#: ``libcublas.so.12.8.4.1`` -> ``12.8.4.1``: the version a system library's file name carries.
_FILE_VERSION = re.compile(r"\.so\.(\d+(?:\.\d+)*)$")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_libs(dists: Optional[Iterable] = None) -> Dict[str, str]:
    """name -> version of every installed ``nvidia-*`` wheel (``dists``: importlib.metadata distributions; this
    Python's when None)."""
    out: Dict[str, str] = {}
    for dist in metadata.distributions() if dists is None else dists:
        m = WHEEL.match(_normalize(dist.metadata["Name"] or ""))
        if m and dist.version and is_library_wheel(dist):
            out.setdefault(m.group("name"), dist.version)
    return out


def is_library_wheel(dist) -> bool:
    """Whether an installed distribution ships a shared library under ``nvidia/`` (what NVIDIA's CUDA wheels
    install: ``nvidia/cublas/lib/libcublas.so.12``)."""
    return any(str(f).replace("\\", "/").startswith("nvidia/") and ".so" in str(f) for f in dist.files or [])


def linker_paths(ldconfig_output: str) -> Dict[str, str]:
    """soname -> path of each library in ``ldconfig -p``'s output (the first one listed, the one loaded)."""
    out: Dict[str, str] = {}
    for line in ldconfig_output.splitlines():
        name, sep, path = line.strip().partition(" => ")
        if sep:
            out.setdefault(name.split(" (", 1)[0].strip(), path.strip())
    return out


def system_libs(paths: Dict[str, str], realpath=os.path.realpath) -> Dict[str, str]:
    """name -> version of the SYSTEM_LIBS on the linker path (``paths``: linker_paths), from the name of the file
    each soname resolves to; a file without a version in its name (a wheel's copy registered with ldconfig) says
    nothing and is left out."""
    out: Dict[str, str] = {}
    for name, stem in SYSTEM_LIBS.items():
        for soname in sorted(s for s in paths if s.startswith(stem + ".")):
            m = _FILE_VERSION.search(os.path.basename(realpath(paths[soname])))
            if m and "." in m.group(1):
                out[name] = m.group(1)
                break
    return out


def cuda_libs(dists: Optional[Iterable] = None, ldconfig_output: Optional[str] = None) -> Dict[str, str]:
    """The image's CUDA libraries: every nvidia-* wheel, then the system libraries no wheel names."""
    if ldconfig_output is None:
        try:
            ldconfig_output = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             universal_newlines=True, check=False).stdout
        except OSError:
            ldconfig_output = ""
    found = wheel_libs(dists)
    for name, version in system_libs(linker_paths(ldconfig_output)).items():
        found.setdefault(name, version)
    return dict(sorted(found.items()))


def label_value(libs: Dict[str, str]) -> str:
    """``name=version,...`` (the label's and org.edgeasr.versions' format)."""
    return ",".join("{}={}".format(n, v) for n, v in sorted(libs.items()))


def parse_label(value: Optional[str]) -> Dict[str, str]:
    """name -> version from a label value; an empty or missing label is an empty dict."""
    return dict(item.split("=", 1) for item in (value or "").split(",") if "=" in item)


#: The sonames each library of the label is loaded by (its major version appended): what a CUDA backend dlopens.
LOADED: Dict[str, Tuple[str, ...]] = {"cuda-runtime": ("libcudart",), "cublas": ("libcublas", "libcublasLt"),
                                      "cudnn": ("libcudnn",)}

#: The prefix of the one line ``--load`` prints (a JSON object follows): the host reads only that line.
LOAD_PREFIX = "EDGEASR_CUDA_LIBS "


def sonames(libs: Dict[str, str]) -> List[str]:
    """The sonames of the LOADED libraries that ``libs`` names: ``cublas=12.8.4.1`` -> libcublas.so.12 and
    libcublasLt.so.12."""
    return ["{}.so.{}".format(stem, libs[name].split(".")[0]) for name, stems in LOADED.items() if name in libs
            for stem in stems]


def load(names: Iterable[str]) -> Dict[str, Optional[str]]:
    """soname -> None where the dynamic linker loads it, else its error: no GPU is needed to load a CUDA library
    (the driver is opened only when a device is used), so a GPU-less host checks this much of a CUDA image."""
    import ctypes

    out: Dict[str, Optional[str]] = {}
    for name in names:
        try:
            ctypes.CDLL(name)
            out[name] = None
        except OSError as exc:
            out[name] = str(exc)[:300]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Print the label value; with ``--load``, LOAD_PREFIX + a JSON object: the libraries found and whether each
    of their sonames loads."""
    argv = sys.argv[1:] if argv is None else argv
    libs = cuda_libs()
    if "--load" in argv:
        import json

        print(LOAD_PREFIX + json.dumps({"libs": libs, "load": load(sonames(libs))}))
    else:
        print(label_value(libs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
