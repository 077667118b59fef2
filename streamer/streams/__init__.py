"""The streams: what a stream is, the two of them, and their registry.

A stream handler turns a batch of change events into writes through the driver door
(:mod:`streamer.mongo`), on the decisions of :mod:`streamer.core`. The runtime runs
them; the commands name them through :mod:`streamer.streams.registry`.
"""
