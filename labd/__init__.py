"""labd: a lab-instrument daemon and its clients.

Importing ``labd`` loads nothing else, so that ``labd --help``, a client script and the
GUI pay only for what they use. The pieces live in their modules:

* :mod:`labd.client` -- connect to a daemon (``connect``, ``connect_blocking``);
* :mod:`labd.rings` -- read a daemon's streams zero-copy from shared memory (``attach``);
* :mod:`labd.records` -- the Arrow layout of readings and frames;
* :mod:`labd.config`, :mod:`labd.daemon`, :mod:`labd.supervisor` -- the daemon itself.
"""

__version__ = "0.1.0"
"""Kept equal to the version in pyproject.toml (tests/labd/test_init.py checks it)."""
