"""The ``streamer`` command's entry point, light enough to import in no time.

Importing :mod:`streamer.commands.cli` (the drivers, pydantic, structlog) takes about a second; a
Ctrl-C in that second would otherwise end in a KeyboardInterrupt traceback. Here it is
the same one line and exit status as a Ctrl-C that interrupts a command.
"""

from __future__ import annotations

import os
import sys

from ..runtime.shutdown import INTERRUPTED  # asyncio and the standard library only


def main() -> None:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        print(f"streamer{' ' + command if command else ''}: interrupted", file=sys.stderr)
        sys.stderr.flush()
        os._exit(INTERRUPTED)  # nothing to clean up yet; a second Ctrl-C cannot interrupt it
    cli_main()
