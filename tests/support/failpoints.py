"""The type of the ``fail_point`` fixture (tests/conftest.py), for tests that annotate it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

# ``async with fail_point({...configureFailPoint...}):`` turns it on for the block.
FailPoint = Callable[[Mapping[str, Any]], AbstractAsyncContextManager[None]]
