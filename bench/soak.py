"""Soak: does a ``labd serve`` that runs for weeks keep its memory, fds, threads and shm flat?

Starts a real daemon (the simulated lab, fast polling, a 10 fps camera, 256 MiB of rings,
persisting to a temp dir) and churns against it from client subprocesses for ``--minutes``:

* ``connect``: async and blocking clients connect, list, read, disconnect; blocking
  clients from several threads at once;
* ``subscribe``: frame and reading subscriptions (and state watches) opened and closed
  cleanly, or dropped with the connection;
* victims: subprocesses that subscribe to frames, readings and states and are SIGKILLed;
* ``shares``: sharing tokens created, redeemed, used, revoked;
* ``scripts``: ``scan.wat`` (a few steps) and a trapping module uploaded and run, logs
  followed;
* ``faults``: faults injected into the meter; the supervisor restarts it.

Every ``--every`` seconds it samples the daemon's RSS (``VmRSS``), open fds, threads and
its files in ``/dev/shm`` (rings and lanes). The floor is the plateau: the median of the
samples in the first minute after warm-up. It prints the table, the ratio end/plateau
and the growth per hour extrapolated from a least-squares line over the samples after
warm-up. A leak shows as steady growth after warm-up, not as a step at start.

Run: .venv/bin/python bench/soak.py --minutes 3
With ``LABD_TRACEMALLOC=/tmp/labd-alloc.txt`` in the environment the daemon also writes the
allocation sites that grew most (see :data:`labd.daemon.TRACEMALLOC_ENV`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT / "wasm_scripts" / "examples" / "wat" / "scan.wat"
TRAP = """(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) unreachable))"""
WARMUP_S = 20.0
"""Default warm-up before the floor. The private heap keeps rising for ~20 minutes as
native caches fill (bench/README.md "Soak"), so a long soak passes ``--warmup-minutes 20``
and then churns ``--minutes`` more: the steady state is what a weeks-long daemon lives in."""
PLATEAU_S = 60.0

LAB_TOML = """
[daemon]
ring_memory_mb = 256
retention_s = 60
data_dir = "{data_dir}"

[restart]
max_restarts = 1000
window_s = 10
backoff_initial_s = 0.05
backoff_max_s = 0.2

[instruments.stage]
driver = "sim.stage"
poll_hz = 50

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 100

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 10
sensor_width = 512
sensor_height = 512

[instruments.thermo]
driver = "sim.thermometer"
supply = "psu"
poll_hz = 20

[instruments.psu]
driver = "sim.power_supply"
poll_hz = 0
"""


# ---------------------------------------------------------------- sampling the daemon


@dataclass
class Sample:
    t: float
    rss_kib: int
    anon_kib: int
    fds: int
    threads: int
    shm_files: int
    shm_kib: int


def sample(pid: int, t0: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    files, size = shm_usage(pid)
    return Sample(
        t=time.monotonic() - t0,
        rss_kib=int(fields["VmRSS"].split()[0]),
        anon_kib=int(fields["RssAnon"].split()[0]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
        shm_files=files,
        shm_kib=size // 1024,
    )


def shm_usage(pid: int) -> tuple[int, int]:
    """(files, bytes mapped) of /dev/shm files the daemon maps or holds open: its rings and
    lanes, including unlinked ones (which a directory listing would miss)."""
    mapped: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/dev/shm/"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            mapped[parts[5]] = mapped.get(parts[5], 0) + end - start
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("/dev/shm/"):
                mapped.setdefault(target, 0)
    return len(mapped), sum(mapped.values())


FIGURES = (
    ("rss_kib", "RSS", "MiB", 1 / 1024),
    ("anon_kib", "RSS anonymous", "MiB", 1 / 1024),
    ("fds", "open fds", "", 1.0),
    ("threads", "threads", "", 1.0),
    ("shm_files", "/dev/shm files", "", 1.0),
    ("shm_kib", "/dev/shm used", "MiB", 1 / 1024),
)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return (
        sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600 if var else 0.0
    )


def report(samples: list[Sample], cycles: dict[str, int], warmup_s: float = WARMUP_S) -> None:
    print("\n  t/s   RSS/MiB  anon/MiB  fds  threads  shm files  shm/MiB")
    for s in samples:
        print(
            f"{s.t:6.0f}  {s.rss_kib / 1024:8.1f}  {s.anon_kib / 1024:8.1f} {s.fds:4d}  {s.threads:7d}"
            f"  {s.shm_files:9d}  {s.shm_kib / 1024:7.1f}"
        )
    after = [s for s in samples if s.t >= warmup_s]
    plateau = [s for s in after if s.t < warmup_s + PLATEAU_S] or after[:1]
    span_h = (after[-1].t - after[0].t) / 3600 if len(after) > 1 else 0.0
    print(f"\nchurn done: {', '.join(f'{k} {v}' for k, v in sorted(cycles.items()))}")
    print(
        f"floor: plateau = median of {len(plateau)} samples {warmup_s:g}–"
        f"{warmup_s + PLATEAU_S:g} s; growth/h: least squares over {len(after)} samples"
        f" after {warmup_s:g} s ({span_h * 60:.1f} min)"
    )
    print(f"\n{'figure':16} {'plateau':>10} {'end':>10} {'end/plateau':>12} {'growth/h':>12}")
    for attr, label, unit, scale in FIGURES:
        floor = statistics.median(getattr(s, attr) for s in plateau) * scale
        end = getattr(samples[-1], attr) * scale
        per_h = slope_per_hour([(s.t, getattr(s, attr) * scale) for s in after])
        ratio = f"{end / floor:.2f}×" if floor else "—"
        print(
            f"{label:16} {floor:9.1f}{unit[:1]:1} {end:9.1f}{unit[:1]:1} {ratio:>12} {per_h:+11.1f}{unit[:1]:1}"
        )


# ---------------------------------------------------------------- churn (client side)


def worker(kind: str, address: str, seconds: float) -> None:
    """One churn loop in this (sub)process; prints its cycle count last."""
    from labd.aio import run

    count = run(CHURN[kind], address, time.monotonic() + seconds)
    print(f"cycles {count}", flush=True)


async def churn_connect(address: str, until: float) -> int:
    import trio

    from capabilities import Readable
    from labd.client import connect, connect_blocking

    def blocking_cycles(counter: list[int]) -> None:
        while time.monotonic() < until:
            with connect_blocking(address) as lab:
                lab.instruments()
                lab.instrument("meter").get(Readable).read()
            counter[0] += 1

    counts = [0]
    threads = [threading.Thread(target=blocking_cycles, args=(counts,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    n = 0
    while time.monotonic() < until:
        async with connect(address) as lab:
            await lab.instruments()
            await lab.streams()
            await (await lab.instrument("meter").get(Readable)).read()
        n += 1
        await trio.sleep(0)
    await trio.to_thread.run_sync(lambda: [t.join() for t in threads])
    return n + counts[0]


async def churn_subscribe(address: str, until: float) -> int:
    import trio

    from labd.client import connect

    n = 0
    while time.monotonic() < until:
        async with connect(address) as lab:
            for stream in ("camera/frames", "meter/reading", "stage/position"):
                async with lab.subscribe(stream, window=random.choice((1, 2, 4))) as sub:
                    with trio.move_on_after(2):
                        got = 0
                        async for _ in sub:
                            got += 1
                            if got >= 3:
                                break
            async with lab.watch_states():
                await trio.sleep(0.05)
            if n % 2:  # leave one open: it ends with the connection
                sub2 = lab.subscribe("camera/frames")
                await sub2.__aenter__()
                await trio.sleep(0.2)
        n += 1
    return n


async def churn_victim(address: str, until: float) -> int:
    """Subscribe to everything and wait to be SIGKILLed (the parent does it)."""
    import trio

    from labd.client import connect

    async def drain(lab: object, stream: str) -> None:
        async with lab.subscribe(stream, window=4) as sub:  # type: ignore[attr-defined]
            async for _ in sub:
                pass

    async with connect(address) as lab, trio.open_nursery() as nursery:
        for stream in ("camera/frames", "meter/reading", "thermo/temperature"):
            nursery.start_soon(drain, lab, stream)
        watch = lab.watch_states()
        await watch.__aenter__()
        print("subscribed", flush=True)
        await trio.sleep(until - time.monotonic())
    return 1


async def churn_shares(address: str, until: float) -> int:
    from capabilities import Readable
    from labd.client import Restriction, connect, redeem

    n = 0
    async with connect(address) as lab:
        while time.monotonic() < until:
            meter = lab.instrument("meter")
            token, revoker = await meter.share(Restriction(read_only=True, expires_in=60))
            async with redeem(token, address) as shared:
                await (await shared.get(Readable)).read()
                restricted = await shared.restrict(Restriction(read_only=True))
                await restricted.info()
            if n % 2:
                await revoker.revoke()
            else:
                await lab.revoke(token)
            # One nobody revokes: it expires, and must not stay in the daemon for weeks.
            await meter.share(Restriction(read_only=True, expires_in=0.5))
            await lab.shares()
            n += 1
    return n


async def churn_scripts(address: str, until: float) -> int:
    import trio

    from labd.client import connect
    from labd.scripting import ScriptFailed

    n = 0
    async with connect(address) as lab:
        scripts = await lab.scripts()
        await scripts.upload("soak-trap", TRAP)
        while time.monotonic() < until:
            await scripts.install("soak-scan", SCAN.read_bytes())
            run = await scripts.run(
                "soak-scan",
                args={"steps": 3, "start": 1, "stop": 2},
                grants=["stage:Movable", "meter:Readable", "camera:FrameProducer"],
            )
            if n % 2:
                async with run.log() as lines:
                    async for _ in lines:
                        pass
            with trio.fail_after(30):
                await run.wait()
            trap = await scripts.run("soak-trap")
            with contextlib.suppress(ScriptFailed), trio.fail_after(30):
                await trap.wait()
            await scripts.runs()
            n += 1
    return n


async def churn_faults(address: str, until: float) -> int:
    import trio

    from capabilities import FaultInjectable
    from labd.client import connect

    n = 0
    async with connect(address) as lab, lab.watch_states() as changes:
        while time.monotonic() < until:
            faults = await lab.instrument("thermo").get(FaultInjectable)
            with contextlib.suppress(Exception):
                await faults.inject_fault("raise")
            with trio.move_on_after(3):
                async for change in changes:
                    if change.instrument == "thermo" and change.state == "ready":
                        break
            await trio.sleep(0.5)
            n += 1
    return n


CHURN = {
    "connect": churn_connect,
    "subscribe": churn_subscribe,
    "victim": churn_victim,
    "shares": churn_shares,
    "scripts": churn_scripts,
    "faults": churn_faults,
}


# ---------------------------------------------------------------- orchestration


def spawn_worker(kind: str, address: str, seconds: float) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--worker", kind, "--address", address]
    args += ["--seconds", str(seconds)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_victims(address: str, until: float, cycles: dict[str, int]) -> None:
    """Start a subscribing client, let it receive a while, SIGKILL it; again and again."""
    while time.monotonic() < until:
        victim = spawn_worker("victim", address, 600)
        assert victim.stdout is not None
        victim.stdout.readline()  # "subscribed" (or whatever it printed when it failed)
        time.sleep(random.uniform(0.3, 1.5))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        cycles["killed"] = cycles.get("killed", 0) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=WARMUP_S / 60,
        help="churn this long before the floor is taken, on top of --minutes",
    )
    parser.add_argument("--worker", choices=sorted(CHURN), help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.address, args.seconds)
        return 0

    from labd.launcher import spawn_daemon

    warmup_s = args.warmup_minutes * 60
    seconds = warmup_s + args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="labd-soak-") as tmp:
        config = Path(tmp) / "lab.toml"
        config.write_text(LAB_TOML.format(data_dir=Path(tmp) / "data"))
        with spawn_daemon(config, workdir=tmp) as daemon:
            pid = daemon.process.pid
            t0 = time.monotonic()
            until = t0 + seconds
            print(f"labd serve pid {pid}; churning for {seconds / 60:g} min", flush=True)
            workers = {k: spawn_worker(k, daemon.address, seconds) for k in CHURN if k != "victim"}
            cycles: dict[str, int] = {}
            killer = threading.Thread(target=kill_victims, args=(daemon.address, until, cycles))
            killer.start()
            samples = []
            while time.monotonic() < until:
                samples.append(sample(pid, t0))
                s = samples[-1]
                print(
                    f"  {s.t:5.0f} s  RSS {s.rss_kib / 1024:6.1f} MiB (anon {s.anon_kib / 1024:.1f})"
                    f"  fds {s.fds}  shm files {s.shm_files}",
                    flush=True,
                )
                time.sleep(args.every)
            killer.join()
            for kind, process in workers.items():
                out, _ = process.communicate(timeout=120)
                last = out.strip().splitlines()[-1] if out.strip() else ""
                if process.returncode != 0 or not last.startswith("cycles"):
                    print(f"worker {kind} failed ({process.returncode}):\n{out[-3000:]}")
                else:
                    cycles[kind] = int(last.split()[1])
            time.sleep(2)  # let the last disconnects settle
            samples.append(sample(pid, t0))
            if daemon.process.poll() is not None:
                print(f"the daemon died:\n{daemon.log_text()[-3000:]}")
                return 1
        report(samples, cycles, warmup_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
