"""A grant holds against every sequence and interleaving of calls a collaborator can make.

Each test redeems a sharing token over a real connection to a real daemon and tries to get
more than the share allows: past a range by racing relative moves against a pending one,
past a voltage range by switching on an output the owner left at a high set-point, into
fault injection, into sharing onwards, into unbounded tokens or lifetimes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import (
    FaultInjectable,
    InvalidRequest,
    Movable,
    OutOfRange,
    PermissionDenied,
    Readable,
    Switchable,
    VoltageSource,
)
from drivers.devices.newport_smc100 import SMC100Device
from labd import aio
from labd.client import Restriction, connect, connect_blocking, redeem, redeem_blocking
from labd.errors import CapabilityMissing
from labd.rpc.policy import SHARES_PER_INSTRUMENT
from tests.hardening.conftest import LabdProcess, start_labd

GRANTS_TOML = """
[instruments.stage]
driver = "sim.stage"
poll_hz = 20
velocity = 2.0          # mm/s: a 5 mm move takes ~2.5 s, long enough to race it

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 20

[instruments.psu]
driver = "sim.power_supply"
max_voltage = 30.0
max_current = 3.0
"""

FIVE_MM = Restriction(ranges={"position": (0.0, 5.0)})


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("grants"), config=GRANTS_TOML)
    yield process
    process.stop()
    assert process.proc.returncode == 0, process.log.read_text()


async def home(daemon: LabdProcess) -> None:
    """The owner puts the stage at 0 mm, at rest."""
    async with connect(daemon.address) as lab:
        stage = await lab.instrument("stage").get(Movable)
        await stage.move_abs(0.0)
        await stage.wait_settled(30)


def test_relative_move_during_a_pending_move_is_checked_against_its_target(
    daemon: LabdProcess,
) -> None:
    """move_abs(5) then, long before it settles, move_rel(4): the driver would add 4 to the
    pending target 5 (ending at 9 mm), so the share must refuse it."""

    async def main() -> float:
        await home(daemon)
        async with connect(daemon.address) as lab:
            token, revoker = await lab.instrument("stage").share(FIVE_MM)
            async with redeem(token, daemon.address) as shared:
                stage = await shared.get(Movable)
                await stage.move_abs(5.0)
                assert (await stage.position()).value < 4.0  # still on its way
                with pytest.raises(OutOfRange, match=r"move_rel: would leave the position at 9"):
                    await stage.move_rel(4.0)
                with pytest.raises(OutOfRange):
                    await stage.move_rel(0.5)  # 5.5: the target counts, not the 1-ish mm here
                await stage.move_rel(-1.0)  # back to 4: allowed
                settled = (await stage.wait_settled(30)).value
            await revoker.revoke()
            return settled

    assert aio.run(main) == pytest.approx(4.0, abs=0.01)


def test_a_driver_that_cannot_report_its_target_is_tracked(tmp_path: Path) -> None:
    """The SMC100 driver has no way to ask for its pending target: the daemon remembers
    the one it commanded, and a restricted relative move reaches the controller as the
    absolute move to the target it checked (PA), never as a relative one (PR)."""
    with SMC100Device(link=tmp_path / "smc100", mm_per_s=1.0) as controller:
        config = f"""
[instruments.linear]
driver = "newport.smc100"
port = "{controller.port}"
timeout_s = 0.5
"""
        daemon = start_labd(tmp_path / "labd", config=config)
        try:
            with connect_blocking(daemon.address) as lab:
                token, _ = lab.instrument("linear").share(FIVE_MM)
                with redeem_blocking(token, daemon.address) as shared:
                    linear = shared.get(Movable)
                    linear.move_abs(5.0)  # 5 s at 1 mm/s
                    with pytest.raises(OutOfRange, match="would leave the position at 9"):
                        linear.move_rel(4.0)
                    linear.move_rel(-1.5)
                    controller.wait_received("1PA3.5")
                    lab.instrument("linear").get(Movable).move_abs(0.0)  # the owner, anywhere
                    with pytest.raises(OutOfRange, match=r"would leave the position at -0\.5"):
                        linear.move_rel(-0.5)
        finally:
            daemon.stop()
    moves = [c for c in controller.received if c[1:3] in ("PA", "PR")]
    assert moves == ["1PA5", "1PA3.5", "1PA0"]


def test_concurrent_relative_moves_never_sum_past_the_range(daemon: LabdProcess) -> None:
    """Three move_rel(3) at once from 0 mm: one gets through, the others would leave the
    target at 6 and 9 mm. Then eight move_rel(1) at once from 3: two fit below 5 mm."""

    async def burst(stage: Movable, delta: float, n: int) -> list[str]:
        outcomes: list[str] = []

        async def one() -> None:
            try:
                await stage.move_rel(delta)
                outcomes.append("moved")
            except OutOfRange:
                outcomes.append("refused")

        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
        return sorted(outcomes)

    async def main() -> tuple[list[str], list[str], float]:
        await home(daemon)
        async with connect(daemon.address) as lab:
            token, revoker = await lab.instrument("stage").share(FIVE_MM)
            async with redeem(token, daemon.address) as shared:
                stage = await shared.get(Movable)
                threes = await burst(stage, 3.0, 3)
                ones = await burst(stage, 1.0, 8)
                settled = (await stage.wait_settled(30)).value
            await revoker.revoke()
            return threes, ones, settled

    threes, ones, settled = aio.run(main)
    assert threes == ["moved", "refused", "refused"]
    assert ones == ["moved"] * 2 + ["refused"] * 6
    assert settled == pytest.approx(5.0, abs=0.01)


def test_voltage_and_current_ranges_cover_switching_the_output_on(daemon: LabdProcess) -> None:
    """A share limited to 5 V and 1 A cannot set more, and cannot switch on an output the
    owner left at 20 V (that would put 20 V on the load as surely as set_voltage(20))."""

    async def main() -> None:
        async with connect(daemon.address) as lab:
            psu = lab.instrument("psu")
            owner_source = await psu.get(VoltageSource)
            await (await psu.get(Switchable)).set_on(False)
            await owner_source.set_voltage(20.0)
            await owner_source.set_current_limit(0.5)
            limits = Restriction(ranges={"voltage": (0.0, 5.0), "current": (0.0, 1.0)})
            token, revoker = await psu.share(limits)
            async with redeem(token, daemon.address) as shared:
                source = await shared.get(VoltageSource)
                output = await shared.get(Switchable)
                with pytest.raises(OutOfRange, match="would leave the voltage at 20"):
                    await output.set_on(True)
                assert not await output.is_on()
                with pytest.raises(OutOfRange, match="voltage at 6"):
                    await source.set_voltage(6.0)
                with pytest.raises(OutOfRange, match=r"current at 1\.5"):
                    await source.set_current_limit(1.5)
                await source.set_voltage(4.0)
                await output.set_on(True)  # 4 V, 0.5 A: within the grant
                assert await output.is_on()
                await owner_source.set_current_limit(2.0)  # the owner may; now off limits
                await output.set_on(False)
                with pytest.raises(OutOfRange, match="current at 2"):
                    await output.set_on(True)
            await revoker.revoke()

    aio.run(main)


def test_a_share_cannot_inject_faults(daemon: LabdProcess) -> None:
    """Even a share with no restriction at all lacks FaultInjectable; the owner has it."""

    async def main() -> None:
        async with connect(daemon.address) as lab:
            meter = lab.instrument("meter")
            assert "FaultInjectable" in await meter.capabilities()
            token, revoker = await meter.share(Restriction())
            async with redeem(token, daemon.address) as shared:
                assert "FaultInjectable" not in await shared.capabilities()
                assert "FaultInjectable" not in (await shared.info()).capabilities
                with pytest.raises(CapabilityMissing, match="not FaultInjectable"):
                    await shared.get(FaultInjectable)
                assert (await (await shared.get(Readable)).read()).unit == "W"
            restricted = await meter.restrict(Restriction(read_only=True))
            assert "FaultInjectable" not in await restricted.capabilities()
            await revoker.revoke()

    aio.run(main)


def test_only_the_owner_can_share(daemon: LabdProcess) -> None:
    async def main() -> None:
        async with connect(daemon.address) as lab:
            meter = lab.instrument("meter")
            token, revoker = await meter.share(Restriction())
            async with redeem(token, daemon.address) as shared:
                with pytest.raises(PermissionDenied, match="cannot be shared again"):
                    await shared.share(Restriction(read_only=True))
                narrowed = await shared.restrict(Restriction(read_only=True))
                with pytest.raises(PermissionDenied, match="cannot be shared again"):
                    await narrowed.share(Restriction(read_only=True))
            # The owner may narrow first and share the narrowed view.
            own_view = await meter.restrict(Restriction(read_only=True))
            other, other_revoker = await own_view.share(Restriction())
            async with redeem(other, daemon.address) as shared:
                assert (await (await shared.get(Readable)).read()).unit == "W"
            await revoker.revoke()
            await other_revoker.revoke()

    aio.run(main)


def test_live_shares_per_instrument_are_limited(daemon: LabdProcess) -> None:
    async def main() -> None:
        async with connect(daemon.address) as lab:
            stage = lab.instrument("stage")
            before = len([s for s in await lab.shares() if s.instrument == "stage"])
            revokers = [
                (await stage.share(Restriction(read_only=True)))[1]
                for _ in range(SHARES_PER_INSTRUMENT - before)
            ]
            with pytest.raises(PermissionDenied, match=r"256 live sharing tokens.*revoke some"):
                await stage.share(Restriction(read_only=True))
            # Another instrument has its own allowance.
            _, meter_revoker = await lab.instrument("meter").share(Restriction(read_only=True))
            await meter_revoker.revoke()
            # Revoking one makes room for one.
            await revokers.pop().revoke()
            revokers.append((await stage.share(Restriction(read_only=True)))[1])
            for revoker in revokers:
                await revoker.revoke()
            assert not [s for s in await lab.shares() if s.instrument == "stage"]

    aio.run(main)


@pytest.mark.parametrize("expires_in", [-1.0, math.nan, math.inf, -math.inf])
def test_a_lifetime_must_be_positive_and_finite(daemon: LabdProcess, expires_in: float) -> None:
    async def main() -> None:
        async with connect(daemon.address) as lab:
            with pytest.raises(InvalidRequest, match=r"positive, finite number of seconds"):
                await lab.instrument("meter").share(Restriction(expires_in=expires_in))
            with pytest.raises(InvalidRequest, match=r"positive, finite number of seconds"):
                await lab.instrument("meter").restrict(Restriction(expires_in=expires_in))

    aio.run(main)


def test_never_is_spelled_zero_and_a_lifetime_ends(daemon: LabdProcess) -> None:
    async def main() -> None:
        async with connect(daemon.address) as lab:
            meter = lab.instrument("meter")
            forever, forever_revoker = await meter.share(Restriction())  # expiresIn 0
            brief, _ = await meter.share(Restriction(expires_in=0.3))
            expiry = {s.token: s.expires_at for s in await lab.shares()}
            assert expiry[forever] is None
            assert expiry[brief] is not None
            await trio.sleep(0.4)
            with pytest.raises(PermissionDenied, match="expired"):
                async with redeem(brief, daemon.address):
                    pass
            async with redeem(forever, daemon.address) as shared:
                assert (await (await shared.get(Readable)).read()).unit == "W"
            await forever_revoker.revoke()

    aio.run(main)
