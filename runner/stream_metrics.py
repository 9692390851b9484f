"""Stream mode's figures from a condition's stream events (issue 23): owned by the stream-metrics work.

``stream_metrics(events, condition)`` -> ``StreamMetrics | None`` (None: the condition streamed nothing);
``StreamMetrics.to_json()`` is the summary's "stream" block. See /work/wt/STREAM.md until documented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edgeasr_entrypoint.contract import EventRecord


@dataclass(frozen=True)
class StreamMetrics:
    """Placeholder: the real fields land with the stream-metrics work."""

    def to_json(self) -> dict[str, Any]:
        return {}


def stream_metrics(events: Sequence[EventRecord], condition: str | None) -> StreamMetrics | None:
    """The stream figures of one condition; None when it has no stream events."""
    return None
