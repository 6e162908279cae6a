"""ABI v1 between labd and a WebAssembly experiment script, as data.

This module is the single source of truth for the numbers a guest sees: error codes,
capability kinds, the layout of every struct, and the name and signature of every import
in module ``labd_v1``. ``wasm_scripts/ABI.md`` explains them, ``wasm_scripts/sdk/*`` mirror
them, and a test checks that the C header agrees with this file. The ABI is stable:
later versions only add imports, codes, kinds and struct fields at the end.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from capabilities.declarations import declaration, declared

ABI_VERSION = 1
IMPORT_MODULE = "labd_v1"
WASI_MODULE = "wasi_snapshot_preview1"


class Errno(enum.IntEnum):
    """What a fallible import returns when it fails (success is any value >= 0)."""

    E_INVAL = -1
    """A bad argument, or the instrument refused the request (out of range, wrong state)."""
    E_NOTFOUND = -2
    """No such instrument or argument."""
    E_KIND = -3
    """The instrument lacks that capability."""
    E_BADHANDLE = -4
    """The handle was never returned by ``cap_get``/``frame_snap``, or was released."""
    E_FAULT = -5
    """A pointer/length pair reaches outside the guest's memory."""
    E_DEVICE = -6
    """The instrument failed (it is being restarted) or is unavailable."""
    E_TIMEOUT = -7
    """The instrument did not answer in time."""
    E_DENIED = -8
    """The run was not granted that capability on that instrument."""
    E_TOOSMALL = -9
    """The caller's buffer is smaller than the smallest version of the struct."""
    E_CANCELLED = -10
    """The run is being stopped (cancelled or past its deadline): return from ``run``."""
    E_BUSY = -11
    """The instrument is busy with other callers; try again later."""
    E_LIMIT = -12
    """A per-run limit was reached (held frames, results, log rate)."""

    @property
    def slug(self) -> str:
        """The short name a failed run reports, e.g. ``"denied"`` for ``E_DENIED``."""
        return self.name.removeprefix("E_").lower()


class Kind(enum.IntEnum):
    """Capability kinds, the third argument of ``cap_get``."""

    MOVABLE = 1
    STOPPABLE = 2
    READABLE = 3
    FRAME_PRODUCER = 4
    EXPOSURE_CONTROL = 5
    TEMPERATURE_SENSOR = 6
    VOLTAGE_SOURCE = 7
    SWITCHABLE = 8
    CONFIGURABLE = 9
    """Named parameters (``param_*``): a power meter's wavelength, a camera's gain."""

    @property
    def protocol(self) -> type[Any]:
        """The capability Protocol this kind stands for."""
        return _PROTOCOLS[self]


_PROTOCOLS: dict[Kind, type[Any]] = {
    Kind(decl.abi_kind): decl.protocol for decl in declared() if decl.abi_kind is not None
}
"""Kind -> Protocol, from the capabilities' declarations (``@capability(abi_kind=...)``);
a test checks that every Kind is declared and named after its capability."""


MUTATING_KINDS = frozenset(
    kind for kind in Kind if any(m.mutates for m in declaration(kind.protocol.__name__).methods)
)
"""Kinds whose handle can change the instrument: a run that opens one holds it for
writing, and the instrument's safe state applies if the run ends abnormally."""


class LogLevel(enum.IntEnum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


# Structs are little-endian C layout. A guest passes (ptr, len) of its own copy; the host
# writes min(len, size) bytes, so a guest built against v1 keeps working when v2 appends
# fields, and returns the number of bytes written.

READING_V1 = struct.Struct("<dd")
"""``labd_reading_v1``: f64 value, f64 timestamp (s since the Unix epoch)."""

LIMITS_V1 = struct.Struct("<dd")
"""``labd_limits_v1``: f64 low, f64 high."""

FRAME_STATS_V1 = struct.Struct("<IIqdddddd")
"""``labd_frame_stats_v1``: u32 width, u32 height, i64 seq, f64 timestamp, f64 sum,
f64 min, f64 max, f64 centroid_x, f64 centroid_y (background-subtracted, in pixels)."""

SUPPLY_READBACK_V1 = struct.Struct("<dddii")
"""``labd_supply_readback_v1``: f64 voltage, f64 current, f64 timestamp,
i32 in_compliance (0/1), i32 reserved."""

# Every import of module ``labd_v1``: name -> (params, results), "i" i32, "I" i64, "F" f64.
IMPORTS: dict[str, tuple[str, str]] = {
    # general
    "abi_version": ("", "i"),
    "last_error": ("ii", "i"),
    "log": ("iii", "i"),
    "time_us": ("", "I"),
    "sleep_ms": ("i", "i"),
    "checkpoint": ("", "i"),
    "result_f64": ("iiF", "i"),
    "arg_f64": ("iii", "i"),
    "arg_str": ("iiii", "i"),
    "cap_get": ("iii", "i"),
    # Movable
    "movable_move_abs": ("iF", "i"),
    "movable_move_rel": ("iF", "i"),
    "movable_position": ("iii", "i"),
    "movable_wait_settled": ("iFii", "i"),
    "movable_limits": ("iii", "i"),
    # Stoppable
    "stoppable_stop": ("i", "i"),
    # Readable
    "readable_read": ("iii", "i"),
    # FrameProducer
    "frame_snap": ("i", "i"),
    "frame_stats": ("iii", "i"),
    "frame_copy": ("iii", "i"),
    "frame_release": ("i", "i"),
    # ExposureControl
    "exposure_get": ("ii", "i"),
    "exposure_set": ("iF", "i"),
    # TemperatureSensor
    "temperature_read": ("iii", "i"),
    # VoltageSource
    "supply_set_voltage": ("iF", "i"),
    "supply_set_current_limit": ("iF", "i"),
    "supply_readback": ("iii", "i"),
    # Switchable
    "switch_set": ("ii", "i"),
    "switch_get": ("i", "i"),
    # Configurable (added after v1's first release: appended, never renumbered)
    "param_get_f64": ("iiii", "i"),
    "param_set_f64": ("iiiF", "i"),
    "param_get_text": ("iiiii", "i"),
    "param_set_text": ("iiiii", "i"),
    # Tables (appended after the parameters: a scan's row of named values)
    "result_row": ("iiii", "i"),
}

#: The imports of WASI preview 1 a guest may use (Go's runtime needs them); the host
#: gives a minimal WASI: no files, no network, stdout/stderr go to the run's log and
#: ``poll_oneoff`` sleeps are cancellable.
WASI_IMPORTS = frozenset(
    [
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "sched_yield",
        "random_get",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    ]
)
