"""mongosim: a one-member MongoDB replica set over the wire protocol, for tests.

:class:`MongoSim` (:mod:`.server`) runs it; ``mongosim`` (:mod:`.cli`) from the command line.
"""

from .server import MongoSim

__all__ = ["MongoSim"]
