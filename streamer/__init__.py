"""streamer: keeps derived data in MongoDB correct in real time from change streams."""

__version__ = "0.1.0"
