"""The decision core: pure functions over plain values, no I/O.

Events become effects here (total deltas, alert transitions, states to mirror), and
the plans that the runtime carries out (resync segments, index and validator actions,
lag) are made here. Nothing in it imports the driver, an HTTP or metrics library, or
asyncio: an import-linter contract in pyproject.toml says so.
"""
