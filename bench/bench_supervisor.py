"""Supervisor figures: call overhead and the time to restart a faulted instrument.

Floors, measured in the same run:
* a call through the supervisor vs the same method called on the driver directly;
* a restart (fault → ready) vs a plain close() + open() of the driver.

Run: .venv/bin/python bench/bench_supervisor.py
"""

from __future__ import annotations

import contextlib
import statistics
import time

import trio

from drivers.sim.stage import SimStage
from labd.config import InstrumentSpec, RestartPolicy
from labd.supervisor import State, Supervisor

CALLS = 5000
CALLERS = 20
RESTARTS = 50


async def direct_call_s() -> float:
    stage = SimStage()
    await stage.open()
    t0 = time.perf_counter()
    for _ in range(CALLS):
        await stage.position()
    return (time.perf_counter() - t0) / CALLS


async def direct_reopen_s() -> list[float]:
    stage = SimStage()
    await stage.open()
    samples = []
    for _ in range(RESTARTS):
        t0 = time.perf_counter()
        await stage.close()
        await stage.open()
        samples.append(time.perf_counter() - t0)
    return samples


async def supervised(
    task_status: trio.TaskStatus[tuple[float, float, list[float]]] = trio.TASK_STATUS_IGNORED,
) -> tuple[float, float, list[float]]:
    policy = RestartPolicy(
        max_restarts=RESTARTS + 1, window_s=1, backoff_initial_s=0.0, backoff_max_s=0.0
    )
    sup = Supervisor([InstrumentSpec("stage", "sim.stage")], policy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        handle = sup.get("stage")
        t0 = time.perf_counter()
        for _ in range(CALLS):
            await handle.call("position")
        per_call = (time.perf_counter() - t0) / CALLS
        done = 0

        async def caller() -> None:
            nonlocal done
            for _ in range(CALLS // CALLERS):
                await handle.call("position")
                done += 1

        t0 = time.perf_counter()
        async with trio.open_nursery() as callers:
            for _ in range(CALLERS):
                callers.start_soon(caller)
        rate = done / (time.perf_counter() - t0)
        restarts = []
        for _ in range(RESTARTS):
            await handle.call("inject_fault", "raise")
            t0 = time.perf_counter()
            with contextlib.suppress(Exception):
                await handle.call("position")
            while handle.state is not State.READY:
                await trio.sleep(0)
            restarts.append(time.perf_counter() - t0)
        nursery.cancel_scope.cancel()
    return per_call, rate, restarts


async def main() -> None:
    floor_call = await direct_call_s()
    floor_reopen = statistics.median(await direct_reopen_s())
    per_call, rate, restarts = await supervised()
    med = statistics.median(restarts)
    print(
        f"call through supervisor: {per_call * 1e6:8.1f} µs  (direct driver call {floor_call * 1e6:.1f} µs; ratio {per_call / floor_call:.1f}×)"
    )
    print(
        f"calls/s to one instrument, {CALLERS} callers: {rate:8.0f}"
        f"  ({1 / floor_call:.0f}/s calling the driver directly; ratio {rate * floor_call:.2f}×;"
        " target ≥ 10k/s)"
    )
    print(
        f"restart fault→ready:     {med * 1e3:8.2f} ms median, {max(restarts) * 1e3:.2f} ms max over {RESTARTS}"
        f"  (driver close+open {floor_reopen * 1e3:.3f} ms; ratio {med / floor_reopen:.1f}×; back-off 0)"
    )


if __name__ == "__main__":
    trio.run(main)
