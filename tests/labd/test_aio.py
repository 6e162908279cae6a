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
