"""Find and load ``labd.capnp``, in a source checkout and in an installed wheel alike.

The wheel force-includes the repository's ``schema/`` folder as ``labd/schema``; a source
checkout has it at the repository root. pycapnp needs its own folder on the import path
for the standard ``/capnp/*.capnp`` imports (docs/architecture.md, "Facts measured on this stack": without it, ``-> stream``
aborts the process), so every load goes through :func:`load`, which also puts the
dispatch guard of :mod:`labd.contract.dispatch` on every server class: no server method of the
daemon can then send a traceback to a peer, whatever the peer sends.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import capnp

from labd.contract.dispatch import guard_servers

SCHEMA_FILE = "labd.capnp"


def schema_path() -> Path:
    """Where ``labd.capnp`` is: ``labd/schema/`` when installed, ``<repo>/schema/`` otherwise."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "schema", package_dir.parent / "schema"):
        if (candidate / SCHEMA_FILE).is_file():
            return candidate / SCHEMA_FILE
    raise FileNotFoundError(
        f"{SCHEMA_FILE} not found in {package_dir / 'schema'} or {package_dir.parent / 'schema'};"
        " the labd installation is incomplete (reinstall the package)"
    )


@functools.cache
def load() -> Any:
    """The compiled schema module (``load().Lab``, ``load().Reading``, ...), its server
    classes guarded (:func:`labd.contract.dispatch.guard_servers`)."""
    capnp_include = os.path.dirname(os.path.dirname(capnp.__file__))
    module = capnp.load(str(schema_path()), imports=[capnp_include])
    guard_servers(module)
    return module
