"""The ``streamer`` command.

The service's commands (run, bootstrap, status, resync, verify) arrive with the core
service; until then the command says so plainly instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Keeps derived data in MongoDB correct in real time (in development).",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    parser.parse_args(argv)
    print(
        "streamer: the service is not built yet; this release ships mongosim only "
        "(run `mongosim --help`).",
        file=sys.stderr,
    )
    sys.exit(2)


if __name__ == "__main__":
    main()
