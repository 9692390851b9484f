"""Generated non-speech items (issue 24): silence and noise that any run or sweep can add to its dataset.

Whisper-family models invent text over silence and noise; to measure that, a run needs items that hold no
speech and whose reference is therefore the empty string (runner/data/dataset.py: non-speech, scored apart
from WER by runner/merge.py). The ``nonspeech`` setting (runner/settings.NonspeechSettings) asks for
``count`` items of each type, ``seconds`` long:

- ``silence``: digital zeros;
- a noise type of the noise module (containers/common/edgeasr_entrypoint/noise.py, the very code that mixes
  noise into speech in the containers, so "white" is the same white noise there and here): ``white``,
  ``pink``, ``brown``, ``babble`` (talkers drawn from the dataset's own first utterances: intelligible words
  may be heard in it, which is what babble is), ``file`` (crops of the ``noise.files`` recordings); scaled to
  ``level_dbfs``: RMS over the whole item, in dB relative to a full-scale amplitude of 1.0 (a full-scale sine
  is -3 dBFS by this rule). A level at which the noise would clip is refused, never clipped.

Design: the host writes each item once as 16 kHz mono 16-bit FLAC into a cache folder named by a hash of
everything that makes its samples (the settings, and the sources of babble and file noise), and appends it to
the dataset as an ordinary utterance with a reference of "" and that folder among the dataset's roots. From
there on it is audio like any other: mounted read-only, decoded by the container, hashed into the data
fingerprint (so a sweep's results are keyed by it and resume stays exact), and never a condition of its own.
No container or contract change is needed, and the same items reach every backend. Each item's samples come
from ``condition_seed(item id, "nonspeech", seed)``: the same settings give the same samples on any machine
(given the same numpy), and one item's samples do not depend on how many others there are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
from edgeasr_entrypoint.audio import AudioError, load_audio
from edgeasr_entrypoint.contract import SAMPLE_RATE
from edgeasr_entrypoint.noise import NoiseError, NoiseSpec, condition_seed, make_noise

from ..errors import UserError
from ..settings import NONSPEECH_TYPES
from .dataset import AUDIO_EXTS, Dataset, Utterance

SILENCE = "silence"
#: The kinds of non-speech (the nonspeech setting's types, the lengths ladder's gap types, the segment map's kinds)
NONSPEECH_KINDS = NONSPEECH_TYPES
#: Babble's talkers come from the dataset's first readable utterances, at most this many (decoded on the host).
BABBLE_POOL = 8
COMPLETE = ".complete"  # written last: a folder without it is a cut-off write, made again
SEED_KEY = "nonspeech"  # the condition key of condition_seed: non-speech draws never equal a condition's


def item_id(kind: str, k: int) -> str:
    """``nonspeech-white-01``: the type and the item's number from 1 (ids sort by type, then number)."""
    return f"nonspeech-{kind}-{k + 1:02d}"


def _noise_files(folder: str | None) -> list[Path]:
    if not folder:
        return []
    return sorted(p.resolve() for p in Path(folder).expanduser().rglob("*")
                  if p.suffix.lower() in AUDIO_EXTS and p.is_file())


def noise_recordings(folder: str | None, setting: str = "noise.files") -> list[Path]:
    """The audio files of a noise folder, sorted; UserError naming ``setting`` when there are none."""
    files = _noise_files(folder)
    if not files:
        raise UserError(f"non-speech of type file needs noise recordings: set {setting} to a folder of audio files"
                        + (f" ({folder} holds none)" if folder else ""))
    return files


def _stamp(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def folder_of(ns, babble: Sequence[Utterance] = (), files: Sequence[Path] = (), babble_talkers: int = 4) -> Path:
    """The cache folder of these items: named by a hash of the settings and of the files their noise is made
    from (path, size, modification time), so changed sources make new items, never stale ones."""
    from .hf import cache_root

    key = json.dumps({"types": list(ns.types), "seconds": ns.seconds, "level_dbfs": ns.level_dbfs,
                      "count": ns.count, "seed": ns.seed, "sample_rate": SAMPLE_RATE,
                      "babble": [_stamp(u.audio) for u in babble] if babble else [],
                      "babble_talkers": babble_talkers if babble else None,
                      "files": [_stamp(p) for p in files]}, sort_keys=True)
    return cache_root() / f"nonspeech-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def render(kind: str, n_samples: int, level_dbfs: float, rng: np.random.Generator,
           babble_sources: Sequence[np.ndarray] = (), files: Sequence[Path] = (),
           babble_talkers: int = 4) -> np.ndarray:
    """``n_samples`` of ``kind`` at ``level_dbfs`` RMS (float64); silence is zeros at any level. UserError when
    the noise cannot be made or would exceed full scale (a clipped item would not be at its level)."""
    if kind == SILENCE:
        return np.zeros(n_samples)
    try:
        spec = NoiseSpec(kind, 0.0, files=tuple(str(f) for f in files),
                         babble_talkers=babble_talkers if kind == "babble" else 4)
        unit = make_noise(spec, n_samples, rng, babble_sources=babble_sources)
    except NoiseError as exc:
        raise UserError(f"nonspeech type {kind}: {exc}") from None
    samples = unit.astype(np.float64) * 10.0 ** (level_dbfs / 20.0)
    peak = float(np.max(np.abs(samples)))
    if peak >= 1.0:
        raise UserError(f"nonspeech.level_dbfs {level_dbfs:g} dBFS makes {kind} noise peak above full scale "
                        f"({20 * math.log10(peak):+.1f} dBFS); choose a lower level (the default is -30)")
    return samples


def babble_pool(utterances: Sequence[Utterance]) -> list[Utterance]:
    """Babble's talkers: the first BABBLE_POOL utterances with a speech reference (never a non-speech item)."""
    return [u for u in utterances if not u.nonspeech and u.reference][:BABBLE_POOL]


def _babble_pool(dataset: Dataset) -> tuple[list[Utterance], list[np.ndarray]]:
    used, audio = [], []
    for u in dataset.readable:
        if len(used) >= BABBLE_POOL:
            break
        if u.nonspeech or not u.reference:  # talkers are speech: never a non-speech item
            continue
        try:
            audio.append(load_audio(str(u.audio)))
        except AudioError:
            continue
        used.append(u)
    return used, audio


def with_nonspeech(dataset: Dataset, ns, noise_files: str | None = None, babble_talkers: int = 4) -> Dataset:
    """The dataset with the items ``ns`` (a NonspeechSettings) asks for appended, each with reference "" and
    ``nonspeech`` set to its type; written once into their cache folder (folder_of), which joins the roots.
    No types or a count of 0: the dataset itself."""
    if not ns.types or ns.count < 1:
        return dataset
    kinds = tuple(dict.fromkeys(ns.types))
    files = noise_recordings(noise_files) if "file" in kinds else []
    pool_utts, pool = _babble_pool(dataset) if "babble" in kinds else ([], [])
    if "babble" in kinds and not pool:
        raise UserError("nonspeech type babble needs speech to make talkers of, and the dataset has no readable "
                        "utterance with a reference")
    folder = folder_of(ns, pool_utts, files, babble_talkers)
    n_samples = int(round(ns.seconds * SAMPLE_RATE))
    ids = [(kind, item_id(kind, k)) for kind in kinds for k in range(ns.count)]
    if not (folder / COMPLETE).is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for kind, uid in ids:
                rng = np.random.default_rng(condition_seed(uid, SEED_KEY, ns.seed))
                samples = render(kind, n_samples, ns.level_dbfs, rng, pool, files, babble_talkers)
                sf.write(tmp / f"{uid}.flac", samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            (tmp / COMPLETE).write_text(json.dumps({"ids": [u for _, u in ids]}) + "\n")
            if (folder / COMPLETE).is_file():  # another run wrote the same items meanwhile: theirs stay
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)  # a cut-off write
                os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    real = folder.resolve()
    taken = {u.id for u in dataset.utterances}
    clash = [uid for _, uid in ids if uid in taken]
    if clash:
        raise UserError(f"the dataset already has an utterance {clash[0]!r}, the id of a generated non-speech "
                        f"item; rename it or leave nonspeech out")
    added = tuple(Utterance(uid, real / f"{uid}.flac", "", nonspeech=kind) for kind, uid in ids)
    return replace(dataset, utterances=dataset.utterances + added, roots=(*dataset.roots, real))


def limited(utterances: Sequence[Utterance], n: int | None) -> tuple[Utterance, ...]:
    """The first ``n`` of the dataset's own utterances, and every generated non-speech item: a --limit cuts
    the data, never the items asked for beside it."""
    utts = tuple(utterances)
    if not n:
        return utts
    own = [u for u in utts if not u.nonspeech][:n]
    keep = {id(u) for u in own}
    return tuple(u for u in utts if id(u) in keep or u.nonspeech)
