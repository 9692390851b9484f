"""Host-side telemetry: power samplers and energy over time windows.

Modules, one job each:

* ``base``: the ``Sampler`` interface, ``Sample`` and ``Availability`` records,
  ``NullSampler``;
* ``polling``: the polling thread shared by RAPL and NVML;
* ``tegrastats_parse``: pure parser for one line of Jetson ``tegrastats``;
* ``tegrastats``: ``TegrastatsSampler``, which follows a ``tegrastats`` child;
* ``rapl``: ``RaplSampler`` (CPU package/DRAM energy counters);
* ``nvml``: ``NvmlSampler`` (NVIDIA GPU energy counter or power, via pynvml);
* ``energy``: pure ``integrate``/``baseline`` over a sampler's timeline;
* ``registry``: ``make_sampler(name)`` for the command line.

Nothing is imported here, so importing one module never loads the others.
"""
