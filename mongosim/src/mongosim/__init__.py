from .server import MongoSim

__all__ = ["MongoSim"]
