"""A simulated lab that behaves like hardware: motion takes time, frames are noisy,
outputs go into compliance, and faults can be injected on purpose.

The instruments share one physical world (:mod:`drivers.sim.world`), so a power meter
sees the beam move when the stage moves, and a thermometer warms when the supply heats.
Physics is a function of :func:`trio.current_time`, never of how often anyone polls;
that also lets tests run the lab under :class:`trio.testing.MockClock`.
"""
