"""labd.aio: the malloc tuning every pycapnp process gets from ``aio.run``."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.labd.rpc.conftest import REPO

CHURN = """
import resource, sys
from labd import aio

def churn():
    # 40 MiB is past glibc's own adaptive mmap threshold (at most 32 MiB): untuned, every
    # such buffer is a fresh mapping whose 10240 pages fault in again when written.
    size = 40 * 2**20
    b"x" * size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        b"x" * size
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

async def main():
    return churn()

print(aio.run(main) if sys.argv[1] == "aio.run" else churn())
"""


def churn_faults(how: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, how],
        capture_output=True, text=True, check=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    return int(out.stdout)


def test_aio_run_makes_big_buffers_reuse_memory_instead_of_faulting_it_in() -> None:
    # aio.run is how the daemon, the async client and the blocking client's thread start.
    tuned, untuned = churn_faults("aio.run"), churn_faults("plain")
    assert untuned > 10 * 10000, f"untuned: only {untuned} page faults; is the test still valid?"
    assert tuned < 1000, f"under aio.run: {tuned} page faults for 10 reused 40 MiB buffers"


CYCLES = """
import socket, threading, weakref
import capnp, trio
from labd import aio
from labd.contract import schema

s = schema.load()
freed_on = []


class Sink(s.BatchSink.Server):
    async def push(self, **_):
        pass


class Marker:
    pass


def make_cycles(client, n):
    # A remote capability in a reference cycle, as a failed call's traceback makes one:
    # only the cyclic collector frees it, and freeing it needs this thread's KJ loop.
    for _ in range(n):
        marker = Marker()
        weakref.finalize(marker, lambda: freed_on.append(threading.get_ident()))
        cycle = [client.bootstrap().cast_as(s.BatchSink), marker]
        cycle.append(cycle)


def allocate():
    # On a worker thread (a WASM guest, Trio's thread cache): enough allocations that
    # CPython's automatic collection would run here.
    return len([[] for _ in range(200_000)])


async def main():
    a, b = socket.socketpair()
    server_stream = await aio.aio(capnp.AsyncIoStream.create_connection(sock=a))
    server = capnp.TwoPartyServer(server_stream, bootstrap=Sink())
    client_stream = await aio.aio(capnp.AsyncIoStream.create_connection(sock=b))
    client = capnp.TwoPartyClient(client_stream)
    make_cycles(client, 200)
    await trio.to_thread.run_sync(allocate)
    await trio.sleep(5 * aio.TICK_S)  # the loop's next look at the collector's counts
    loop_thread = threading.get_ident()
    print(len(freed_on), all(thread == loop_thread for thread in freed_on))


aio.run(main)
"""


def test_cycles_holding_capabilities_are_collected_on_the_loop_thread() -> None:
    # Collected on the worker thread, the first such capability aborts the process: "No
    # event loop is running on this thread" (docs/architecture.md, Concurrency).
    out = subprocess.run(
        [sys.executable, "-c", CYCLES],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert out.returncode == 0, f"the process died ({out.returncode}):\n{out.stderr[-2000:]}"
    assert out.stdout.split() == ["200", "True"], "every cycle freed, each on the loop thread"


def test_aio_run_gives_automatic_collection_back_when_it_returns() -> None:
    import gc

    from labd import aio

    async def main() -> bool:
        return gc.isenabled()

    assert gc.isenabled()
    assert aio.run(main) is False
    assert gc.isenabled()
