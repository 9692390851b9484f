"""Backend images: builds, the wheelhouse served to them, pin freshness, and preparing what a sweep needs."""
