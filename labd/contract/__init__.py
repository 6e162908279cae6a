"""The wire contract: what the daemon and its clients must agree on, and nothing else.

Both sides import this package and the daemon's code imports it too, never the other way
round: a client (``labd.client``, the GUI, a notebook) loads no module of the daemon
(docs/architecture.md). One concept per module: the schema (:mod:`.schema`), addresses
and token files (:mod:`.address`), error codes (:mod:`.errors`, :mod:`.script_errors`),
message limits (:mod:`.limits`), restrictions (:mod:`.restriction`), the unix socket a
client connects to (:mod:`.sockets`) and the side channels of pushed batches
(:mod:`.bulk`, :mod:`.lanes`).
"""
