"""The one door to the driver: plain options in, the service's errors out.

The client and every driver call (``client``), built from plain options
(:class:`~streamer.mongo.options.MongoOptions`); driver errors translated
(``errors``); command monitoring; the retry policy (``retries``); the write requests
(``types``); the URI check (``uri``).
"""

from .client import Document, Mongo, Session

__all__ = ["Document", "Mongo", "Session"]
