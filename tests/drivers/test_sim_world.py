"""The sim world: instruments publish physical quantities by name, siblings look them up."""

import pytest
import trio

from capabilities import DeviceError
from drivers.sim.world import HEATING_POWER, POSITION, StepHistory, World, current_world


def test_lookup_returns_what_was_published() -> None:
    world = World()
    world.publish("stage", POSITION, lambda t: 2.0 * t)
    assert world.lookup("stage", POSITION, wanted_by="meter 'meter'")(3.0) == 6.0


def test_missing_link_names_what_is_published() -> None:
    world = World()
    world.publish("stage-a", POSITION, lambda t: 0.0)
    world.publish("psu", HEATING_POWER, StepHistory(0.0, 0.0))
    with pytest.raises(DeviceError) as caught:
        world.lookup("stage-b", POSITION, wanted_by="power meter 'meter'")
    message = str(caught.value)
    assert "power meter 'meter' is linked to 'stage-b'" in message
    assert "instruments that do: stage-a." in message  # the psu publishes no position
    world.forget("stage-a")
    with pytest.raises(DeviceError, match="none"):
        world.lookup("stage-a", POSITION, wanted_by="test")


def test_step_history_splits_an_interval_at_its_steps() -> None:
    power = StepHistory(0.0, t0=10.0)
    power.set(11.0, 5.0)
    power.set(13.0, 2.0)
    power.set(13.0, 3.0)  # two changes at the same instant: the last one holds
    assert list(power.segments(10.5, 14.0)) == [
        (10.5, 11.0, 0.0),
        (11.0, 13.0, 5.0),
        (13.0, 14.0, 3.0),
    ]
    assert list(power.segments(12.0, 12.5)) == [(12.0, 12.5, 5.0)]
    assert list(power.segments(5.0, 6.0)) == [(5.0, 6.0, 0.0)]  # before the record: initial
    assert power.value_at(12.0) == 5.0 and power.value_at(100.0) == 3.0


def test_the_current_world_belongs_to_the_running_trio_program() -> None:
    async def main() -> World:
        assert current_world() is current_world()
        return current_world()

    assert trio.run(main) is not trio.run(main)
    with pytest.raises(RuntimeError, match="inside a running Trio program"):
        current_world()
