"""Energy from a sampler's timeline: integration, the idle baseline, the summary's energy block, live power."""
