"""RPC benchmark: labd's Cap'n Proto stack against native pycapnp and raw sockets.

Run: ``.venv/bin/python bench/bench_rpc.py``. Every server runs in its own process and
talks over a unix socket (labd's default transport). Figures:

- trivial call (``Readable.read``) latency, median and p99, and calls/s with 100 in flight:
  labd (Trio guest on asyncio, server method → ``to_trio`` → Trio task, client ``aio``)
  against native pycapnp (asyncio only, same schema and reply) and a raw socket echo;
- 2048×2048 uint16 frames/s pushed to a subscriber (Arrow IPC, latest-wins, window 4) and
  decoded into a numpy view, through a shared-memory lane (a local client's default) and
  inline in the message (what a client over TCP gets), against a raw socket
  ``sendall``/``recv_into`` of the same bytes with the same socket buffer sizes;
- the same frames over TCP (loopback): on the bulk side channel (a TCP client's default)
  and inline in the message, against a raw TCP socket.

``--only calls``, ``--only frames`` or ``--only tcp`` runs one part.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import capnp  # noqa: E402
import numpy as np  # noqa: E402
import trio  # noqa: E402

from capabilities import Frame, Reading, Roi  # noqa: E402
from labd import aio, records  # noqa: E402
from labd.contract import schema  # noqa: E402
from labd.contract.sockets import tune  # noqa: E402
from labd.rpc import sockets  # noqa: E402

SEQUENTIAL_CALLS = 3000
IN_FLIGHT = 100
DURATION_S = 3.0
FRAME_SHAPE = (2048, 2048)
WINDOW = 4
FRAME_ROUNDS = 3
RAW_ECHO_BYTES = 64

_s: Any = schema.load()


# ---------------------------------------------------------------- servers (subprocesses)


class NativeReadable(_s.Readable.Server):  # type: ignore[misc]
    async def read(self, _context: Any, **_: Any) -> None:
        r = _context.results.reading
        r.value, r.unit, r.timestamp = 1.0, "W", 0.0


def serve_native(path: str) -> None:
    async def main() -> None:
        async def on_connect(stream: Any) -> None:
            await capnp.TwoPartyServer(stream, bootstrap=NativeReadable()).on_disconnect()

        server = await capnp.AsyncIoStream.create_unix_server(on_connect, path)
        async with server:
            await asyncio.Event().wait()

    aio.tune_malloc()
    asyncio.run(capnp.run(main()))


class _InstantHandle:
    """Stands in for an instrument so the figure is the RPC layer's, not a driver's."""

    async def call(self, method: str, *args: Any, **_: Any) -> Reading:
        return Reading(1.0, "W", 0.0)


def serve_labd_calls(path: str) -> None:
    """The daemon's own path for a call: its accept loop, framing guard and dispatch."""
    from labd.rpc.admission import Door, Gate
    from labd.rpc.capability_servers import SERVERS, Target
    from labd.rpc.guard import open_stream
    from labd.rpc.limits import DEFAULT_LIMITS
    from labd.rpc.policy import Policy

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            target = Target(_InstantHandle(), Policy(), nursery)  # type: ignore[arg-type]

            async def handle(conn: socket.socket, gate: Gate) -> None:
                stream, gate.guard = await aio.aio(
                    open_stream(conn, DEFAULT_LIMITS, lambda _reason: None)
                )
                gate.authenticate()  # the figure is of an unlocked connection
                server = capnp.TwoPartyServer(stream, bootstrap=SERVERS["Readable"][1](target))
                await aio.aio(server.on_disconnect())

            listener = sockets.bind_private(Path(path))
            door = Door("the unix socket", DEFAULT_LIMITS)
            nursery.start_soon(sockets.serve, listener, door, handle, nursery)
            await trio.sleep_forever()

    aio.run(main)


def serve_labd_frames(path: str, listen: tuple[str, ...] = ()) -> None:
    """A daemon whose camera is far faster than any subscriber; with ``listen``, its
    first TCP port is written to ``path.port``."""
    from labd.rpc.server import serve_rpc
    from labd.streams import StreamHub
    from labd.supervisor import Supervisor

    class BenchDaemon:
        supervisor = Supervisor([])
        streams = StreamHub()

    data = np.random.default_rng(0).integers(0, 4096, FRAME_SHAPE, dtype=np.uint16)
    batch = records.frame_to_batch(Frame(data, 0.0, 0.01, Roi(0, 0, *FRAME_SHAPE)))
    stream = BenchDaemon.streams.create("bench/frames", records.FRAME_SCHEMA, "frames")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            endpoints = await nursery.start(lambda task_status: serve_rpc(
                BenchDaemon(), socket_path=path, listen=listen, task_status=task_status))  # fmt: skip
            if listen:
                publish_port(path, endpoints.tcp[0][1])
            while True:  # a camera far faster than any subscriber: latest-wins decides
                stream.publish(batch)
                await trio.sleep(0.0005)

    aio.run(main)


def publish_port(path: str, port: int) -> None:
    tmp = path + ".port.tmp"
    Path(tmp).write_text(str(port))
    os.replace(tmp, path + ".port")


def serve_raw_echo(path: str) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        conn, _ = listener.accept()
        while data := conn.recv(65536):
            conn.sendall(data)


def serve_raw_frames(path: str, family: int = socket.AF_UNIX) -> None:
    payload = records.batch_to_ipc(
        records.frame_to_batch(
            Frame(np.zeros(FRAME_SHAPE, np.uint16), 0.0, 0.01, Roi(0, 0, *FRAME_SHAPE))
        )
    )
    with socket.socket(family) as listener:
        listener.bind(path if family == socket.AF_UNIX else ("127.0.0.1", 0))
        listener.listen()
        if family != socket.AF_UNIX:
            publish_port(path, listener.getsockname()[1])
        conn, _ = listener.accept()
        tune(conn)  # the same socket buffers as labd's connections
        header = len(payload).to_bytes(8, "little")
        try:
            while True:
                conn.sendall(header)
                conn.sendall(payload)
        except OSError:
            pass


SERVERS = {
    "native": serve_native,
    "labd-calls": serve_labd_calls,
    "labd-frames": serve_labd_frames,
    "raw-echo": serve_raw_echo,
    "raw-frames": serve_raw_frames,
    "labd-frames-tcp": lambda path: serve_labd_frames(path, ("127.0.0.1:0",)),
    "raw-frames-tcp": lambda path: serve_raw_frames(path, socket.AF_INET),
}


class Server:
    def __init__(self, kind: str, folder: Path) -> None:
        self.path = str(folder / f"{kind}.sock")
        Path(self.path).unlink(missing_ok=True)  # left by an earlier round
        ready = self.path + ".port" if kind.endswith("-tcp") else self.path
        Path(ready).unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, self.path])
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench server {kind} did not start")
            time.sleep(0.02)
        time.sleep(0.2)

    @property
    def tcp_port(self) -> int:
        return int(Path(self.path + ".port").read_text())

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- clients


@dataclass
class CallFigures:
    latencies: list[float]
    rate: float
    """calls/s with IN_FLIGHT calls in flight"""
    client_cpu_us: float
    """CPU of this (client) process per sequential call, all its threads"""
    server_cpu_us: float
    """CPU of the server process per sequential call"""


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU of both ends over the sequential phase: robust where wall time is not, on a
    machine that other jobs load (the ratio of CPU per call is what a quiet machine's
    latency ratio tends to)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def start(self) -> None:
        self._client, self._server = time.process_time(), process_cpu_s(self.server_pid)

    def stop(self, calls: int) -> tuple[float, float]:
        client = (time.process_time() - self._client) / calls * 1e6
        server = (process_cpu_s(self.server_pid) - self._server) / calls * 1e6
        return client, server


def calls_native(path: str, meter: CpuMeter) -> CallFigures:
    async def main() -> CallFigures:
        stream = await capnp.AsyncIoStream.create_unix_connection(path)
        client = capnp.TwoPartyClient(stream)
        cap = client.bootstrap().cast_as(_s.Readable)
        for _ in range(200):
            await cap.read()
        lat = []
        meter.start()
        for _ in range(SEQUENTIAL_CALLS):
            t = time.perf_counter()
            await cap.read()
            lat.append(time.perf_counter() - t)
        cpu = meter.stop(SEQUENTIAL_CALLS)
        count = 0
        end = time.perf_counter() + DURATION_S

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < end:
                await cap.read()
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        rate = count / (time.perf_counter() - start)
        client.close()
        stream.close()
        return CallFigures(lat, rate, *cpu)

    aio.tune_malloc()
    result: CallFigures = asyncio.run(capnp.run(main()))
    return result


def calls_labd(path: str, meter: CpuMeter) -> CallFigures:
    async def main() -> CallFigures:
        from labd.client.remote import REMOTES
        from labd.client.session import open_session

        async with open_session(path) as link:
            readable = REMOTES["Readable"][1](link, link.bootstrap.cast_as(_s.Readable))
            for _ in range(200):
                await readable.read()
            lat = []
            meter.start()
            for _ in range(SEQUENTIAL_CALLS):
                t = time.perf_counter()
                await readable.read()
                lat.append(time.perf_counter() - t)
            cpu = meter.stop(SEQUENTIAL_CALLS)
            count = 0
            end = time.perf_counter() + DURATION_S

            async def worker() -> None:
                nonlocal count
                while time.perf_counter() < end:
                    await readable.read()
                    count += 1

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(IN_FLIGHT):
                    nursery.start_soon(worker)
            return CallFigures(lat, count / (time.perf_counter() - start), *cpu)

    result: CallFigures = aio.run(main)
    return result


def calls_raw(path: str, meter: CpuMeter) -> CallFigures:
    msg = b"x" * RAW_ECHO_BYTES
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)

        def roundtrip(n: int) -> None:
            s.sendall(msg * n)
            want = RAW_ECHO_BYTES * n
            while want:
                want -= len(s.recv(want))

        lat = []
        meter.start()
        for _ in range(SEQUENTIAL_CALLS):
            t = time.perf_counter()
            roundtrip(1)
            lat.append(time.perf_counter() - t)
        cpu = meter.stop(SEQUENTIAL_CALLS)
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < DURATION_S:
            roundtrip(IN_FLIGHT)
            count += IN_FLIGHT
        return CallFigures(lat, count / (time.perf_counter() - start), *cpu)


def frames_labd(
    path: str, shared_memory: bool = False, bulk: bool = False, token: str | None = None
) -> float:
    """Frames/s received by a subscriber *and decoded* into a numpy view of the pixels.

    ``shared_memory``: through a lane (a local client's default); ``bulk``: on the bulk
    side channel (a TCP client's default); neither: in the message.
    """

    async def main() -> float:
        from labd.client import connect

        async with (
            connect(path, token=token) as lab,
            lab.subscribe(
                "bench/frames", window=WINDOW, shared_memory=shared_memory, bulk=bulk
            ) as sub,
        ):
            count, start = 0, None
            async for message in sub:
                if start is None:
                    start = time.perf_counter()  # the first frame ends the warm-up
                    continue
                assert message.frame().data.shape == FRAME_SHAPE
                count += 1
                if time.perf_counter() - start > DURATION_S:
                    return count / (time.perf_counter() - start)
        raise RuntimeError("subscription ended early")

    result: float = aio.run(main)
    return result


def frames_raw(path: str | tuple[str, int]) -> float:
    """Frames/s through a bare socket: ``recv_into`` one reused buffer, nothing decoded."""
    with socket.socket(socket.AF_UNIX if isinstance(path, str) else socket.AF_INET) as s:
        tune(s)
        s.connect(path)
        header = bytearray(8)
        buf = bytearray(FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2 + 65536)

        def read_exact(view: memoryview) -> None:
            while view:
                n = s.recv_into(view)
                view = view[n:]

        read_exact(memoryview(header))
        size = int.from_bytes(header, "little")
        read_exact(memoryview(buf)[:size])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < DURATION_S:
            read_exact(memoryview(header))
            read_exact(memoryview(buf)[: int.from_bytes(header, "little")])
            count += 1
        return count / (time.perf_counter() - start)


# ---------------------------------------------------------------- report


def summary(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return statistics.median(lat) * 1e6, lat[int(len(lat) * 0.99)] * 1e6


CALL_PAIRS = (
    # (client, server): native pycapnp on both ends is the floor; the mixed pairs split
    # labd's cost into the daemon's share and the client's.
    ("native", "native"),
    ("native", "labd-calls"),
    ("labd", "native"),
    ("labd", "labd-calls"),
)
CLIENTS = {"native": calls_native, "labd": calls_labd, "raw": calls_raw}


def measure_calls(folder: Path, rounds: int) -> None:
    figures: dict[tuple[str, str], list[CallFigures]] = {}
    for _ in range(rounds):  # alternating, so a burst of load hits every pair alike
        for client, server_kind in (("raw", "raw-echo"), *CALL_PAIRS):
            with Server(server_kind, folder) as server:
                run = CLIENTS[client](server.path, CpuMeter(server.proc.pid))
            figures.setdefault((client, server_kind), []).append(run)

    def med(pair: tuple[str, str], value: Any) -> float:
        return statistics.median(value(f) for f in figures[pair])

    def lat(pair: tuple[str, str], q: float) -> float:
        return med(pair, lambda f: sorted(f.latencies)[int(len(f.latencies) * q)] * 1e6)

    native, labd = ("native", "native"), ("labd", "labd-calls")
    print(f"trivial call (Readable.read), median of {rounds} alternating rounds:")
    print("  client → server           median     p99   calls/s (100 in flight)")
    for pair in (("raw", "raw-echo"), *CALL_PAIRS):
        name = f"{pair[0]} → {pair[1].replace('-calls', '')}"
        print(
            f"  {name:22s} {lat(pair, 0.5):7.1f} µs {lat(pair, 0.99):7.1f} µs"
            f" {med(pair, lambda f: f.rate):9.0f}"
        )
    print(
        f"  labd/native: latency {lat(labd, 0.5) / lat(native, 0.5):.2f}× (target ≤ 1.5×),"
        f" calls/s {med(labd, lambda f: f.rate) / med(native, lambda f: f.rate):.2f}×"
        " (target ≥ 0.8×)"
    )
    server_native = med(("native", "native"), lambda f: f.server_cpu_us)
    server_labd = med(("native", "labd-calls"), lambda f: f.server_cpu_us)
    client_native = med(("native", "native"), lambda f: f.client_cpu_us)
    client_labd = med(("labd", "native"), lambda f: f.client_cpu_us)
    print("CPU per sequential call (median of rounds; both ends' every thread):")
    print(f"  server: native pycapnp {server_native:6.1f} µs, labd daemon {server_labd:6.1f} µs")
    print(f"  client: native pycapnp {client_native:6.1f} µs, labd client {client_labd:6.1f} µs")
    print(
        f"  labd's own cost: daemon +{server_labd - server_native:.1f} µs,"
        f" client +{client_labd - client_native:.1f} µs"
        " (target: the client adds no more than the daemon)"
    )


def measure_frames(folder: Path) -> None:
    # Alternate the three so that a neighbour's load on the shared VM hits all alike.
    fps: dict[str, list[float]] = {"raw": [], "lane": [], "inline": []}
    for _ in range(FRAME_ROUNDS):
        with Server("raw-frames", folder) as server:
            fps["raw"].append(frames_raw(server.path))
        for kind in ("lane", "inline"):
            with Server("labd-frames", folder) as server:
                fps[kind].append(frames_labd(server.path, shared_memory=kind == "lane"))
    raw, lane, inline = (statistics.median(fps[k]) for k in ("raw", "lane", "inline"))
    mib = FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2 / 2**20
    print(
        f"{FRAME_SHAPE[0]}×{FRAME_SHAPE[1]} uint16 frames ({mib:.0f} MiB) to one subscriber,"
        f" window {WINDOW}, median of {FRAME_ROUNDS} alternating rounds:"
    )
    print(f"  raw socket sendall       {raw:7.1f} frames/s ({raw * mib / 1024:.2f} GiB/s)")
    for label, value in (
        ("labd, shared-memory lane", lane),
        ("labd, inline in message", inline),
    ):
        print(
            f"  {label} {value:7.1f} frames/s ({value * mib / 1024:.2f} GiB/s)"
            f"   = {value / raw:.2f}× raw socket (target ≥ 0.7×)"
        )
    for kind, values in fps.items():
        print(f"  rounds, {kind:6s}: " + ", ".join(f"{v:.0f}" for v in values))


def measure_tcp_frames(folder: Path) -> None:
    from labd.contract.address import read_token, token_path_for

    fps: dict[str, list[float]] = {"raw": [], "bulk": [], "inline": []}
    for _ in range(FRAME_ROUNDS):
        with Server("raw-frames-tcp", folder) as server:
            fps["raw"].append(frames_raw(("127.0.0.1", server.tcp_port)))
        for kind in ("bulk", "inline"):
            with Server("labd-frames-tcp", folder) as server:
                token = read_token(token_path_for(Path(server.path)))
                address = f"tcp://127.0.0.1:{server.tcp_port}"
                fps[kind].append(frames_labd(address, bulk=kind == "bulk", token=token))
    raw, bulk, inline = (statistics.median(fps[k]) for k in ("raw", "bulk", "inline"))
    mib = FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2 / 2**20
    print(
        f"same frames over TCP (loopback), window {WINDOW},"
        f" median of {FRAME_ROUNDS} alternating rounds:"
    )
    print(f"  raw TCP socket sendall   {raw:7.1f} frames/s ({raw * mib / 1024:.2f} GiB/s)")
    for label, value in (
        ("labd, bulk side channel ", bulk),
        ("labd, inline in message ", inline),
    ):
        print(
            f"  {label} {value:7.1f} frames/s ({value * mib / 1024:.2f} GiB/s)"
            f"   = {value / raw:.2f}× raw TCP socket (target ≥ 0.7×)"
        )
    for kind, values in fps.items():
        print(f"  rounds, {kind:6s}: " + ", ".join(f"{v:.0f}" for v in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["calls", "frames", "tcp"], help="run one part only")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the calls")
    args = parser.parse_args()
    print(f"RPC benchmark (unix socket; TCP part on loopback; {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "calls"):
            measure_calls(Path(tmp), args.rounds)
        if args.only in (None, "frames"):
            measure_frames(Path(tmp))
        if args.only in (None, "tcp"):
            measure_tcp_frames(Path(tmp))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        SERVERS[sys.argv[2]](sys.argv[3])
    else:
        main()
