"""How numbers and counts read in what edgeasr prints: one place, so every command says them alike."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 utterance", "2 utterances", "0 conditions" (``many``: an irregular plural)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def seconds(value: float) -> str:
    """Seconds without float noise: "0.3 s" (not 0.30000000000000004), "12 s", "1.25 s"; at most 3 significant
    decimals below 10 s, whole seconds from 100 s on."""
    if value >= 100:
        return f"{value:.0f} s"
    text = f"{value:.3g}" if value < 10 else f"{value:.1f}"
    if "e" in text:
        text = f"{value:.3f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return f"{text} s"


def size(n_bytes: float) -> str:
    """Bytes as a person reads a download: "145 MB", "1.53 GB" (10^6 and 10^9 bytes, as the README's model sizes)."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.3g} GB"
    if n_bytes >= 1e6:
        return f"{n_bytes / 1e6:.3g} MB"
    return f"{n_bytes / 1e3:.3g} kB"


def duration(value_s: float) -> str:
    """A long time as a person reads it: "45 s", "12 min", "2 h 10 min", "3 d 4 h" (rounded to its unit)."""
    value_s = max(0.0, value_s)
    if value_s < 60:
        return f"{value_s:.0f} s"
    minutes = round(value_s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(round(value_s / 3600), 24)
    return f"{days} d" + (f" {hours} h" if hours else "")
