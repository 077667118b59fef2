"""The running service and the machinery it shares with the one-shot commands.

The supervisor, stream ownership and its leases, watchers, commits and checkpoints,
writer sessions, the resync, snapshot reads, verification, bootstrap, health, HTTP and
metrics, and shutdown: everything that reads and writes the database on the
service's behalf, over the streams (:mod:`streamer.streams.handler`).
"""
