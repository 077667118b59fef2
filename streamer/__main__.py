"""``python -m streamer``."""

from .cli import main

main()
