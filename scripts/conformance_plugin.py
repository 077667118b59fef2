"""pytest plugin for ``make conformance``: deselect the tests in the skip list.

Loaded into PyMongo's test run with ``-p conformance_plugin``; it reads the TOML file named
by ``CONFORMANCE_SKIPS`` and deselects (as ``--deselect`` does) every collected test whose
node id matches an entry's ``test`` glob, so PyMongo's tests are never edited.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from pathlib import Path

import pytest


def _patterns() -> list[str]:
    path = os.environ.get("CONFORMANCE_SKIPS")
    if not path:
        return []
    entries = tomllib.loads(Path(path).read_text())["skip"]
    return [entry["test"] for entry in entries]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    patterns = _patterns()
    keep, drop = [], []
    for item in items:
        if any(fnmatch.fnmatchcase(item.nodeid, pattern) for pattern in patterns):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
