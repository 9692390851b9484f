"""Energy from a sampler's timeline: integration, the idle baseline, the summary's energy block, live power."""

#: Which idle the dynamic figures subtract (``--baseline``): the host's, before the container (``idle``), or the
#: loaded idle (``loaded-idle``: container up, model loaded and warmed up, doing nothing). Here, importing nothing,
#: so that the settings can name the choices without loading the accounting.
IDLE = "idle"
LOADED_IDLE = "loaded-idle"
BASELINES = (IDLE, LOADED_IDLE)
