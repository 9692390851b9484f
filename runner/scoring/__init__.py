"""Turning transcripts and stream events into figures: WER and its kin (metrics), stream mode's latency, lag and stability (stream_metrics)."""
