"""``python -m streamer``."""

from .entry import main

main()
