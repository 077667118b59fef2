"""The terminal's Ctrl-C for the demo alone, when something else started it (``make run``).

Ctrl-C sends SIGINT to the terminal's whole foreground process group. Under ``make run``
that group holds make and its shell as well as the demo: the demo stops cleanly and exits
0, but make, interrupted too, reports ``*** [run] Interrupt`` and dies by the signal
(exit 130). A shell with job control avoids this for its own jobs by giving each job its
own process group and handing it the terminal (``tcsetpgrp``); :func:`foreground` does the
same for the demo when it runs inside someone else's group, and gives the terminal back
when the demo ends. Run from a shell directly, the demo already leads its own group and
nothing changes; without a terminal (tests, CI) nothing changes either.

While it holds the terminal the demo ignores Ctrl-Z: a demo stopped in a group of its own
would leave make waiting and the terminal with nobody to read it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable


def _without_sigttou(action: Callable[[], None]) -> None:
    # A process outside the foreground group that calls tcsetpgrp gets SIGTTOU, which
    # would stop it: ignored for the call, as shells do.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        action()
    finally:
        signal.signal(signal.SIGTTOU, previous)


def should_take(fd: int) -> bool:
    """True when ``fd`` is a terminal whose foreground group is ours, led by another."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp() != os.getpid()
    except OSError:
        return False


def foreground() -> Callable[[], None]:
    """Take the terminal's foreground for this process if :func:`should_take`; returns
    what gives it back (idempotent, quick, safe to call from a signal handler's path)."""
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not should_take(fd):
        return lambda: None
    before = os.getpgrp()
    stop_key = signal.signal(signal.SIGTSTP, signal.SIG_IGN)

    def take() -> None:
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())

    try:
        _without_sigttou(take)
    except OSError:  # a terminal that will not: carry on as before
        signal.signal(signal.SIGTSTP, stop_key)
        return lambda: None
    given_back = False

    def give_back() -> None:
        nonlocal given_back
        if given_back:
            return
        given_back = True
        # Left ignored: a line written after this (an error, from the background group
        # now) must not stop the process on a terminal with ``stty tostop``.
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        with contextlib.suppress(OSError):  # make has gone: its shell takes it back itself
            os.tcsetpgrp(fd, before)
        signal.signal(signal.SIGTSTP, stop_key)

    return give_back
