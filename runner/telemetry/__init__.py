"""Host-side telemetry: power samplers and energy over time windows.

Modules, one job each:

* ``base``: the ``Sampler`` interface, ``Sample`` and ``Availability`` records,
  ``NullSampler``;
* ``polling``: the polling thread shared by RAPL and NVML;
* ``tegrastats_parse``: pure parser for one line of Jetson ``tegrastats``;
* ``tegrastats``: ``TegrastatsSampler``, which follows a ``tegrastats`` child;
* ``rapl``: ``RaplSampler`` (CPU package/DRAM energy counters);
* ``nvml``: ``NvmlSampler`` (NVIDIA GPU energy counter or power, via pynvml);
* ``jtop``: ``JtopSampler`` (Jetson rails through the jetson-stats service);
* ``energy``: pure ``integrate`` over a sampler's timeline;
* ``accounting``: the summary's energy block (windows, baseline, memory);
* ``registry``: the sampler table (one row per sampler: scope, memory figures,
  auto rank) and ``make_sampler(name)``;
* ``select``: the sampler for a run, by name or ``auto`` (order from the table);
* ``idle``: the idle baseline before a container (no UI: the caller passes
  ``on_wait`` to show a spinner).

Nothing is imported here, so importing one module never loads the others.
"""
