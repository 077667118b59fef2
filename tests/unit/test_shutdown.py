"""The second signal forces the exit, after what must not outlive even that."""

from __future__ import annotations

import pytest

from streamer.runtime import shutdown
from streamer.runtime.shutdown import Signals


class Forced(Exception):
    """Stands in for os._exit, which would end the test run."""


def test_the_second_signal_runs_on_force_then_forces_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def force_exit(name: str) -> None:
        calls.append(f"exit {name}")
        raise Forced

    monkeypatch.setattr(shutdown, "force_exit", force_exit)
    signals = Signals(
        lambda: calls.append("stop"), name="streamer", on_force=lambda: calls.append("clean up")
    )
    signals._on_signal()
    assert calls == ["stop"]
    with pytest.raises(Forced):
        signals._on_signal()
    assert calls == ["stop", "clean up", "exit streamer"]


def test_a_failing_on_force_never_stands_in_the_way_of_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def force_exit(name: str) -> None:
        raise Forced

    def broken() -> None:
        raise OSError("the directory is gone already")

    monkeypatch.setattr(shutdown, "force_exit", force_exit)
    signals = Signals(lambda: None, on_force=broken)
    signals._on_signal()
    with pytest.raises(Forced):
        signals._on_signal()
