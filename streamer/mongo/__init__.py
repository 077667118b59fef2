"""The database seam: the client (``client``), command monitoring and retry policy."""

from .client import Document, Mongo, Session

__all__ = ["Document", "Mongo", "Session"]
