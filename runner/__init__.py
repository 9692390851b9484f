"""edgeasr host runner: spec -> container -> raw outputs -> merge -> results -> report."""

__version__ = "0.1.0"
