"""Mix noise into an utterance at an exact, reproducible signal-to-noise ratio.

This module's one job: given 16 kHz mono float32 speech and a noise condition
(white, pink, brown, babble or a noise recording at ``snr_db``), return the noisy
utterance the model will hear. It runs inside every backend container (numpy,
soundfile and soxr only; Python 3.9) and on the host for ``edgeasr noise preview``.

Choices that decide what an SNR means here:

- Power is the mean square over the WHOLE utterance, pauses included (see
  ``signal_power``). This is the "global SNR" of most ASR noise-robustness work,
  not the active speech level of ITU-T P.56: an utterance with long silences gets
  relatively louder noise during its speech than its nominal SNR suggests.
- The noise is scaled so that the SNR is exact for this utterance (no clipping,
  no rounding to a grid): the output may exceed [-1, 1]; models take float input.
  ``peak_normalize_for_export`` scales a preview down for writing a WAV file.
- Every random draw comes from ``condition_seed(utterance_id, condition_key)``,
  a sha256 of the names, so a rerun, another process or another machine mixes
  bit-identical audio (given the same numpy version).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .audio import AudioError, load_audio
from .contract import CLEAN, NOISE_TYPES, SAMPLE_RATE

SPEC_TYPES = (CLEAN,) + NOISE_TYPES

# Coloured noise has no energy below this frequency (DC included). Brown noise's
# 1/f^2 spectrum would otherwise put most of its power into sub-audible drift
# (the lowest FFT bin of a 30 s signal is 0.03 Hz), and an SNR whose noise power
# nobody hears would be meaningless.
COLOURED_LOW_HZ = 20.0
# Exponent alpha of the power spectrum 1/f^alpha: 1 = -3 dB/octave, 2 = -6 dB/octave.
_COLOUR_EXPONENT = {"pink": 1.0, "brown": 2.0}

_SPEC_KEYS = ("type", "snr_db", "files", "babble_talkers")


class NoiseError(ValueError):
    """A noise condition cannot be built or applied; the message says which field or input."""


@dataclass(frozen=True)
class NoiseSpec:
    """One noise condition: a noise type at an SNR (or "clean", the no-noise baseline).

    The same spec is written by the host into the job and read back here, so it is
    validated on construction: a spec that exists can always be applied.
    """

    type: str  # "clean" or one of NOISE_TYPES
    snr_db: Optional[float]  # None for clean
    files: Tuple[str, ...] = ()  # for type "file": noise recordings (paths)
    babble_talkers: int = 4  # for type "babble"

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or self.type not in SPEC_TYPES:
            raise NoiseError(f"noise.type must be one of {list(SPEC_TYPES)}, got {self.type!r}")
        if self.type == "clean":
            if self.snr_db is not None:
                raise NoiseError(f"noise.snr_db must be null for type 'clean', got {self.snr_db!r}")
        else:
            if self.snr_db is None:
                raise NoiseError(f"noise.snr_db is missing: type {self.type!r} needs an SNR in dB")
            if isinstance(self.snr_db, bool) or not isinstance(self.snr_db, (int, float)):
                raise NoiseError(f"noise.snr_db must be a number, got {type(self.snr_db).__name__}")
            if not math.isfinite(self.snr_db):
                raise NoiseError(f"noise.snr_db must be finite, got {self.snr_db!r}")
            object.__setattr__(self, "snr_db", float(self.snr_db))
        if isinstance(self.files, str) or not isinstance(self.files, (list, tuple)):
            raise NoiseError(f"noise.files must be a list of paths, got {type(self.files).__name__}")
        files = tuple(self.files)
        for f in files:
            if not isinstance(f, str) or not f:
                raise NoiseError(f"noise.files must hold non-empty path strings, got {f!r}")
        object.__setattr__(self, "files", files)
        if self.type == "file" and not files:
            raise NoiseError("noise.files is missing or empty: type 'file' needs at least one noise recording")
        if self.type != "file" and files:
            raise NoiseError(f"noise.files is only for type 'file', not {self.type!r}")
        if isinstance(self.babble_talkers, bool) or not isinstance(self.babble_talkers, int):
            raise NoiseError(f"noise.babble_talkers must be an integer, got {type(self.babble_talkers).__name__}")
        if self.babble_talkers < 1:
            raise NoiseError(f"noise.babble_talkers must be at least 1, got {self.babble_talkers}")

    @classmethod
    def from_json(cls, d: Any) -> "NoiseSpec":
        """Read a spec from its JSON object; NoiseError names the bad or unknown field."""
        if not isinstance(d, dict):
            raise NoiseError(f"noise must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_SPEC_KEYS))
        if unknown:
            raise NoiseError(f"noise has unknown keys {unknown}; known: {list(_SPEC_KEYS)}")
        if "type" not in d:
            raise NoiseError("noise.type is missing")
        kind = d["type"]
        if kind != "babble" and "babble_talkers" in d:
            raise NoiseError(f"noise.babble_talkers is only for type 'babble', not {kind!r}")
        return cls(
            type=kind,
            snr_db=d.get("snr_db"),
            files=d.get("files", ()),
            babble_talkers=d.get("babble_talkers", 4),
        )

    def to_json(self) -> dict:
        """The JSON object ``from_json`` reads back to an equal spec (type-specific keys only)."""
        out: dict = {"type": self.type, "snr_db": self.snr_db}
        if self.type == "file":
            out["files"] = list(self.files)
        if self.type == "babble":
            out["babble_talkers"] = self.babble_talkers
        return out

    @property
    def is_clean(self) -> bool:
        return self.type == "clean"


def condition_seed(utterance_id: str, condition_key: str, base_seed: int = 0) -> int:
    """A seed that is the same in every process and on every machine (sha256, not ``hash()``).

    The three values are JSON-encoded together, so ("a b", "c") and ("a", "b c")
    cannot collide. The result fits in an unsigned 64-bit integer.
    """
    payload = json.dumps([int(base_seed), str(utterance_id), str(condition_key)], ensure_ascii=True)
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def signal_power(x: np.ndarray) -> float:
    """Mean square over the whole signal, pauses included, computed in float64.

    Whole-utterance power is the usual definition in ASR noise benchmarks and needs
    no voice-activity threshold that could shift with the noise; its cost is that
    the SNR during speech is higher than nominal when the utterance has long pauses.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.mean(a * a))


def _check_1d(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise NoiseError(f"{what} must be a 1-D mono signal, got shape {a.shape}")
    return a


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Return speech + g * noise as float32, with g chosen so the SNR is exactly ``snr_db``.

    Nothing is clipped: clipping would change the SNR, and models take float input.
    """
    s = _check_1d(speech, "speech")
    n = _check_1d(noise, "noise")
    if s.shape != n.shape:
        raise NoiseError(f"speech and noise must have the same length, got {s.size} and {n.size} samples")
    p_speech = signal_power(s)
    p_noise = signal_power(n)
    if not (math.isfinite(p_speech) and math.isfinite(p_noise)):
        raise NoiseError("speech or noise contains NaN or infinite samples")
    if p_speech == 0.0:
        raise NoiseError("the speech is silent (power 0): no noise level gives it an SNR")
    if p_noise == 0.0:
        raise NoiseError("the noise is silent (power 0): it cannot be scaled to an SNR")
    gain = math.sqrt(p_speech / (p_noise * 10.0 ** (float(snr_db) / 10.0)))
    mixed = s.astype(np.float64) + gain * n.astype(np.float64)
    return mixed.astype(np.float32)


def measured_snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    """SNR of ``mixed`` against its clean speech: the added part is ``mixed - clean``.

    Returns +inf when nothing was added (the clean condition).
    """
    c = _check_1d(clean, "clean").astype(np.float64)
    m = _check_1d(mixed, "mixed").astype(np.float64)
    if c.shape != m.shape:
        raise NoiseError(f"clean and mixed must have the same length, got {c.size} and {m.size} samples")
    p_noise = signal_power(m - c)
    if p_noise == 0.0:
        return math.inf
    p_clean = signal_power(c)
    if p_clean == 0.0:
        return -math.inf
    return 10.0 * math.log10(p_clean / p_noise)


def _unit_power(x: np.ndarray, what: str) -> np.ndarray:
    """Scale to mean square 1 (float32) so every noise type leaves make_noise at one level."""
    p = signal_power(x)
    if p == 0.0 or not math.isfinite(p):
        raise NoiseError(f"{what} has no usable power (power {p})")
    return (np.asarray(x, dtype=np.float64) / math.sqrt(p)).astype(np.float32)


def _loop_crop(x: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` from ``x`` starting at a random offset, wrapping round (looping) as needed."""
    offset = int(rng.integers(x.size))
    idx = (offset + np.arange(n_samples, dtype=np.int64)) % x.size
    return x[idx]


def _coloured(n_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Seeded white noise shaped to a 1/f^exponent power spectrum in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.fft.rfftfreq(n_samples, d=1.0 / SAMPLE_RATE)
    gain = np.zeros_like(freqs)
    audible = freqs >= COLOURED_LOW_HZ  # DC and sub-audible drift removed
    gain[audible] = freqs[audible] ** (-exponent / 2.0)  # amplitude ~ f^(-alpha/2): power ~ f^-alpha
    return np.fft.irfft(spectrum * gain, n=n_samples)


def make_noise(
    spec: NoiseSpec,
    n_samples: int,
    rng: np.random.Generator,
    babble_sources: Sequence[np.ndarray] = (),
    load: Callable[[str], np.ndarray] = load_audio,
) -> np.ndarray:
    """Return ``n_samples`` of the spec's noise as float32 with unit power (mean square 1).

    ``babble_sources`` are other utterances (16 kHz mono); the caller leaves out the
    utterance being noised, and passes them in a stable order (the rng picks by
    index). ``load`` reads a noise recording; pass a cached one to read each file once.
    """
    if spec.is_clean:
        raise NoiseError("type 'clean' has no noise to make")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise NoiseError(f"n_samples must be a positive integer, got {n_samples!r}")
    n_samples = int(n_samples)

    if spec.type == "white":
        return _unit_power(rng.standard_normal(n_samples), "white noise")

    if spec.type in _COLOUR_EXPONENT:
        shaped = _coloured(n_samples, _COLOUR_EXPONENT[spec.type], rng)
        return _unit_power(shaped, f"{spec.type} noise of {n_samples} samples (too short to hold {COLOURED_LOW_HZ:g} Hz)")

    if spec.type == "babble":
        if len(babble_sources) == 0:
            raise NoiseError("babble needs other utterances as babble_sources, and none were given")
        k = spec.babble_talkers
        # Distinct talkers when there are enough sources; otherwise some repeat, at other offsets.
        picks = rng.choice(len(babble_sources), size=k, replace=len(babble_sources) < k)
        total = np.zeros(n_samples, dtype=np.float64)
        for i in picks:
            src = _check_1d(babble_sources[int(i)], f"babble source {int(i)}").astype(np.float64)
            p = signal_power(src)
            if p == 0.0 or not math.isfinite(p):
                raise NoiseError(f"babble source {int(i)} is silent or not finite: it cannot be a talker")
            # Normalized by the talker's whole-utterance power, not the crop's: talkers are
            # equally loud, their pauses stay pauses, and a crop of near-silence is not blown up.
            total += _loop_crop(src, n_samples, rng) / math.sqrt(p)
        return _unit_power(total, "babble (every talker's crop is silent)")

    # spec.type == "file"
    path = spec.files[int(rng.integers(len(spec.files)))]
    try:
        recording = _check_1d(load(path), f"noise file {path}")
    except AudioError as exc:
        raise NoiseError(f"cannot read noise file: {exc}") from exc
    p = signal_power(recording)
    if p == 0.0 or not math.isfinite(p):
        raise NoiseError(f"noise file {path} is silent (power 0) or not finite")
    return _unit_power(_loop_crop(recording, n_samples, rng), f"the crop of noise file {path}")


def babble_sources_for(utterance_id: str, pool: Mapping[str, np.ndarray]) -> Tuple[np.ndarray, ...]:
    """The babble talkers for one utterance: every pooled utterance but itself, in id order.

    Sorting by id makes the rng's picks independent of how the pool was filled.
    """
    return tuple(pool[k] for k in sorted(pool) if k != utterance_id)


def apply_noise(
    speech: np.ndarray,
    spec: NoiseSpec,
    utterance_id: str,
    condition_key: str,
    babble_sources: Sequence[np.ndarray] = (),
    load: Callable[[str], np.ndarray] = load_audio,
    base_seed: int = 0,
) -> np.ndarray:
    """The utterance as the model hears it under ``spec``: reproducible for (utterance, condition).

    Clean returns ``speech`` itself. Otherwise the noise is drawn from an rng seeded
    by ``condition_seed(utterance_id, condition_key, base_seed)`` and mixed at
    exactly ``spec.snr_db``.
    """
    if spec.is_clean:
        return speech
    s = _check_1d(speech, "speech")
    p = signal_power(s)
    if not math.isfinite(p):
        raise NoiseError(f"utterance {utterance_id} contains NaN or infinite samples")
    if p == 0.0:
        raise NoiseError(f"utterance {utterance_id} is silent (power 0), so no noise level gives it an SNR")
    rng = np.random.default_rng(condition_seed(utterance_id, condition_key, base_seed))
    noise = make_noise(spec, s.size, rng, babble_sources=babble_sources, load=load)
    return mix_at_snr(s, noise, spec.snr_db)


def peak_normalize_for_export(x: np.ndarray) -> np.ndarray:
    """Scale down only if the peak exceeds 1, so a WAV file holds it unclipped at the same SNR.

    Only for writing previews: the model gets the unscaled mix.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.size == 0:
        return a
    peak = float(np.max(np.abs(a)))
    if peak > 1.0:
        return (a.astype(np.float64) / peak).astype(np.float32)
    return a
