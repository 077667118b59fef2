"""``python -m streamer``."""

from .commands.entry import main

main()
