"""Serve a simulated serial instrument on a pty until interrupted.

    python -m drivers.devices ell14 --link /tmp/labd-ell14
    python -m drivers.devices smc100 --link /tmp/labd-smc100
    python -m drivers.devices 1830c --link /tmp/labd-1830c

Point the driver's ``port`` at the link path. Sending SIGUSR1 makes the device vanish
and SIGUSR2 brings it back, so a daemon's reconnect can be tried by hand or from a test
that runs the simulator as a separate process.
"""

from __future__ import annotations

import argparse
import signal
import threading

from drivers.devices.newport_1830c import Newport1830CDevice
from drivers.devices.newport_smc100 import SMC100Device
from drivers.devices.serial_device import SerialDevice
from drivers.devices.thorlabs_ell14 import ELL14Device

DEVICES: dict[str, type[SerialDevice]] = {
    "ell14": ELL14Device,
    "smc100": SMC100Device,
    "1830c": Newport1830CDevice,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m drivers.devices", description=__doc__)
    parser.add_argument("device", choices=sorted(DEVICES))
    parser.add_argument("--link", required=True, help="stable path to publish the port at")
    args = parser.parse_args()
    device = DEVICES[args.device](link=args.link)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=device.disappear).start())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=device.reappear).start())
    with device:
        print(f"{args.device} listening at {args.link}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
