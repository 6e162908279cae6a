"""A link whose I/O call really blocks: the toolkit's deadline abandons the worker thread.

A USB-serial adapter whose kernel driver wedges ignores the port's timeout. Here the same
is produced with a real pty: the simulated device swallows commands (``mode = "silent"``)
and pyserial is given a 30 s timeout, so the worker thread sits in ``read`` far past the
instrument's configured timeout. The toolkit must give up on it at its own deadline, say
which instrument and command hung, keep the event loop free for the other instruments,
and not leave the stuck thread reading the port behind the next connection's back.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import trio

from capabilities import DeviceDisconnected, DeviceTimeout, Movable, Readable
from drivers.devices.newport_1830c import Newport1830CDevice
from drivers.devices.thorlabs_ell14 import ELL14Device
from drivers.registry import DRIVERS
from drivers.thorlabs_ell14 import ThorlabsELL14
from drivers.toolkit import Connection
from drivers.toolkit.connection import GRACE_S
from drivers.toolkit.serial_link import SerialLink
from labd.config import InstrumentSpec, RestartPolicy
from labd.supervisor import State, Supervisor

#: What pyserial waits for a reply: "forever" next to the instrument's 0.2 s.
STUCK_S = 30.0
TIMEOUT_S = 0.2
#: Scheduling slack for a loaded 2-core CI machine.
MARGIN_S = 0.5


class ThorlabsELL14OnWedgedAdapter(ThorlabsELL14):
    """An ELL14 behind an adapter whose driver ignores the read timeout (see module doc)."""

    def __init__(self, *, port: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(port=port, timeout_s=timeout_s)
        link = self.connection.link
        assert isinstance(link, SerialLink)
        link.timeout_s = STUCK_S  # read by SerialLink.open()


def ell14_connection(port: str) -> Connection:
    link = SerialLink(port, timeout_s=STUCK_S, write_termination="", read_termination="\r\n")
    return Connection(link, model="Thorlabs ELL14", timeout_s=TIMEOUT_S)


def test_an_answer_the_stopped_loop_saw_late_is_not_a_hang(tmp_path: Path) -> None:
    """The loop is frozen (as by a SIGSTOP of the daemon) while the worker thread finishes
    its query: when the loop runs again the deadline has passed, but the thread is done,
    so its answer is used and the link is not abandoned as hung."""

    async def main() -> None:
        with ELL14Device(link=tmp_path / "ell14") as mount:
            link = SerialLink(
                mount.port, timeout_s=TIMEOUT_S, write_termination="", read_termination="\r\n"
            )
            # The query delay keeps the thread busy while the loop freezes below.
            connection = Connection(
                link, model="Thorlabs ELL14", timeout_s=TIMEOUT_S, query_delay_s=0.3
            )
            await connection.open()

            async def freeze_the_loop() -> None:
                await trio.sleep(0.1)  # the query is in its thread now
                time.sleep(connection.deadline_s + MARGIN_S)  # nothing on the loop runs

            async with trio.open_nursery() as nursery:
                nursery.start_soon(freeze_the_loop)
                assert await connection.query("0gp") == "0PO00000000"
            assert await connection.query("0gp") == "0PO00000000"  # not abandoned
            await connection.close()

    trio.run(main)


def test_a_hung_query_raises_device_timeout_at_the_deadline(tmp_path: Path) -> None:
    async def main() -> None:
        with ELL14Device(link=tmp_path / "ell14") as mount:
            connection = ell14_connection(mount.port)
            await connection.open()
            assert await connection.query("0gp") == "0PO00000000"

            mount.mode = "silent"
            start = trio.current_time()
            with pytest.raises(DeviceTimeout) as raised:
                await connection.query("0gp")
            elapsed = trio.current_time() - start
            # Not the link's timeout (30 s) and not earlier than the deadline: the thread
            # really blocked, and the Trio deadline is what ended the call.
            assert connection.deadline_s <= elapsed < connection.deadline_s + MARGIN_S
            assert str(raised.value).startswith(
                f"Thorlabs ELL14 at {mount.port} hung on '0gp': the I/O call was still "
                f"blocked after {connection.deadline_s:g} s (timeout {TIMEOUT_S:g} s)"
            )
            mount.wait_received("0gp")

            # The abandoned link refuses further use instead of queueing behind the thread.
            with pytest.raises(DeviceDisconnected, match="hung earlier and is abandoned"):
                await connection.query("0gp")
            with trio.fail_after(MARGIN_S):
                await connection.close()

            # A new connection on the same port gets every reply: the stuck thread was
            # made to let go of the port and reads none of them.
            mount.mode = "normal"
            again = ell14_connection(mount.port)
            await again.open()
            for _ in range(20):
                assert await again.query("0gp") == "0PO00000000"
            await again.close()

    trio.run(main)


def test_a_call_cancelled_by_its_caller_does_not_share_the_port_with_the_next(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with ELL14Device(link=tmp_path / "ell14") as mount:
            link = SerialLink(
                mount.port, timeout_s=0.5, write_termination="", read_termination="\r\n"
            )
            connection = Connection(link, model="Thorlabs ELL14", timeout_s=0.5)
            await connection.open()
            mount.mode = "silent"
            start = trio.current_time()
            with trio.move_on_after(0.1):  # the caller gives up; its thread reads on
                await connection.query("0gp")
            mount.mode = "normal"
            # The next query waits for the abandoned read to end (its 0.5 s timeout)
            # instead of racing it for the reply.
            assert await connection.query("0gp") == "0PO00000000"
            assert 0.5 <= trio.current_time() - start < 0.5 + MARGIN_S
            for _ in range(5):
                assert await connection.query("0gp") == "0PO00000000"
            await connection.close()

    trio.run(main)


def test_a_call_cancelled_before_it_got_a_thread_leaves_the_link_free(tmp_path: Path) -> None:
    async def main() -> None:
        with ELL14Device(link=tmp_path / "ell14") as mount:
            connection = ell14_connection(mount.port)
            await connection.open()
            # Every worker thread busy elsewhere: the next call waits for one.
            trio.to_thread.current_default_thread_limiter().total_tokens = 1
            release = threading.Event()

            async def hold_the_only_thread() -> None:
                await trio.to_thread.run_sync(release.wait)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hold_the_only_thread)
                await trio.sleep(0.05)
                with trio.move_on_after(0.1) as gave_up:
                    await connection.query("0gp")
                assert gave_up.cancelled_caught
                release.set()
            with trio.fail_after(MARGIN_S):  # not the whole deadline, waiting for a ghost
                assert await connection.query("0gp") == "0PO00000000"
            await connection.close()

    trio.run(main)


async def wait_for_state(supervisor: Supervisor, name: str, *states: State) -> None:
    with trio.fail_after(10):
        while supervisor.get(name).state not in states:
            await trio.sleep(0.01)


def test_a_hung_instrument_faults_alone_and_reconnects_once_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        DRIVERS, "test.wedged_ell14", f"{__name__}:{ThorlabsELL14OnWedgedAdapter.__name__}"
    )

    async def main() -> None:
        with (
            ELL14Device(link=tmp_path / "ell14", degrees_per_s=3600.0) as mount,
            Newport1830CDevice(link=tmp_path / "1830c") as meter_device,
        ):
            specs = [
                InstrumentSpec(
                    name="rotator",
                    driver="test.wedged_ell14",
                    params={"port": mount.port},
                    call_timeout_s=10.0,  # longer than the toolkit's deadline: it acts first
                ),
                InstrumentSpec(
                    name="meter", driver="newport.1830c", params={"port": meter_device.port}
                ),
            ]
            policy = RestartPolicy(max_restarts=100, backoff_initial_s=0.05, backoff_max_s=0.2)
            supervisor = Supervisor(specs, policy)
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                rotator = supervisor.get("rotator")
                stage = rotator.proxy(Movable)
                meter = supervisor.get("meter").proxy(Readable)
                await stage.move_abs(45.0)
                assert (await stage.wait_settled()).value == pytest.approx(45.0, abs=0.01)

                mount.mode = "silent"
                hung = trio.Event()
                sibling_reads: list[float] = []
                loop_lags: list[float] = []

                async def keep_reading_the_meter() -> None:
                    while not hung.is_set():
                        start = time.monotonic()
                        assert (await meter.read()).value == pytest.approx(1.5e-3)
                        sibling_reads.append(time.monotonic() - start)

                async def measure_loop_lag() -> None:
                    while not hung.is_set():
                        start = trio.current_time()
                        await trio.sleep(0.01)
                        loop_lags.append(trio.current_time() - start - 0.01)

                async with trio.open_nursery() as siblings:
                    siblings.start_soon(keep_reading_the_meter)
                    siblings.start_soon(measure_loop_lag)
                    start = trio.current_time()
                    with pytest.raises(DeviceTimeout, match=r"Thorlabs ELL14 .* hung on '0gp'"):
                        await stage.position()
                    elapsed = trio.current_time() - start
                    hung.set()
                assert elapsed < TIMEOUT_S * 2 + GRACE_S + MARGIN_S
                # While the rotator's thread sat in read(), the meter kept answering and
                # the loop kept its timers.
                assert len(sibling_reads) >= 10, sibling_reads
                assert max(sibling_reads) < MARGIN_S, sibling_reads
                assert max(loop_lags) < MARGIN_S, loop_lags

                await wait_for_state(supervisor, "rotator", State.FAULTED, State.RESTARTING)
                assert rotator.reason is not None
                assert rotator.reason.startswith("position() raised DeviceTimeout: Thorlabs")
                assert "hung on '0gp'" in rotator.reason
                assert supervisor.get("meter").state == State.READY

                mount.mode = "normal"
                await wait_for_state(supervisor, "rotator", State.READY)
                assert rotator.restarts >= 1
                assert (await stage.position()).value == pytest.approx(45.0, abs=0.01)
                assert (await meter.read()).unit == "W"
                nursery.cancel_scope.cancel()

    trio.run(main)
