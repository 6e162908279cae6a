"""The daemon's network API: Cap'n Proto capabilities over unix sockets, TCP and TLS.

``schema/labd.capnp`` is the contract; :func:`labd.rpc.server.serve_rpc` serves it;
:mod:`labd.client` is the client side.
"""
