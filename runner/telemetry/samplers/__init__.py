"""The power samplers: one interface, one module per source, the sampler table and the choice of one."""
