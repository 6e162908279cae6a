"""labd.guest: Trio waits in asyncio's selector, with the same timing, wake-ups and cancels."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import trio

from labd import aio, guest
from labd.aio import to_trio
from tests.labd.rpc.conftest import REPO


def trio_io_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("Trio thread")]


def test_trio_in_guest_mode_waits_without_its_io_thread() -> None:
    async def main() -> list[str]:
        for _ in range(5):
            await trio.sleep(0.01)
        return trio_io_threads()

    assert guest.install()
    assert aio.run(main) == []


def test_deadlines_wakeups_from_threads_and_cancels_behave_as_stock_trio() -> None:
    async def main() -> dict[str, float]:
        figures: dict[str, float] = {}
        start = time.monotonic()
        await trio.sleep(0.2)
        figures["sleep"] = time.monotonic() - start
        # A worker thread's result wakes Trio through its wake-up socket.
        start = time.monotonic()
        await trio.to_thread.run_sync(time.sleep, 0.1)
        figures["to_thread"] = time.monotonic() - start
        with trio.move_on_after(0.1) as scope:
            await trio.sleep_forever()
        figures["cancelled"] = float(scope.cancelled_caught)

        # An asyncio callback waking a Trio task: the path every RPC call takes.
        async def double(x: int) -> int:
            await trio.sleep(0)
            return 2 * x

        async with trio.open_nursery() as nursery:
            figures["to_trio"] = float(await aio.aio(to_trio(nursery, double, 21)))
        return figures

    figures = aio.run(main)
    assert 0.2 <= figures["sleep"] < 1.0
    assert 0.1 <= figures["to_thread"] < 1.0
    assert figures["cancelled"] == 1.0
    assert figures["to_trio"] == 42.0


def test_the_stock_guest_mode_stays_available() -> None:
    code = (
        "import threading, trio; from labd import aio\n"
        "async def main():\n"
        "    await trio.sleep(0.05)\n"
        "    return [t.name for t in threading.enumerate() if t.name.startswith('Trio thread')]\n"
        "print(len(aio.run(main)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, check=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO), **{guest.STOCK_ENV: "1"}),
    )  # fmt: skip
    assert int(out.stdout) >= 1  # Trio's own I/O thread did the waiting
