"""The I/O-free core: plain, synchronous, deterministic objects.

Nothing here imports anyio or websockets' I/O layers, or reads a clock: the
I/O layer (``wsclient._client`` and ``wsclient._transport``) passes ``now`` in
and acts on what these objects return. That is what lets the tests drive every
rule here without sockets or an event loop.
"""
