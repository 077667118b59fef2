"""configureFailPoint, as mongod offers it under enableTestCommands.

``failCommand`` (src/mongo/db/commands/fail_point_cmd.cpp and the drivers' spec test
format): modes alwaysOn/off/{times}/{skip}/{activationProbability}; data: failCommands,
errorCode, errorLabels, closeConnection, blockConnection/blockTimeMS, writeConcernError,
appName. ``failGetMoreAfterCursorCheckout`` fails a getMore after its cursor is found.
``onPrimaryTransactionalWrite`` fires once per statement of a retryable write
(src/mongo/db/transaction/transaction_participant.cpp, onWriteOpCompletedOnPrimary): it
closes the connection unless ``closeConnection: false`` (the statement still commits), and
with ``failBeforeCommitExceptionCode`` the statement fails and is not reflected.
``maxTimeAlwaysTimeOut`` makes every command with ``maxTimeMS`` fail with 50
MaxTimeMSExpired (src/mongo/db/operation_context.cpp).
``stopReplProducer`` (a member of ``--members N``) stops the member replicating from its
sync source: mongod's BackgroundSync::_produce blocks while it is on, and its oplog
fetcher drops a batch it fetched when it finds it on (src/mongo/db/repl/bgsync.cpp,
oplog_fetcher.cpp). What the member applied stays; it catches up once the point is off.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MongoError

KNOWN = frozenset(
    {
        "failCommand",
        "failGetMoreAfterCursorCheckout",
        "onPrimaryTransactionalWrite",
        "maxTimeAlwaysTimeOut",
        "stopReplProducer",
    }
)
# mongod never fails these through failCommand (they are needed to talk to the server).
EXEMPT = frozenset(
    {
        "configureFailPoint",
        "hello",
        "isMaster",
        "ismaster",
        "ping",
        "buildInfo",
        "getParameter",
        "endSessions",
    }
)


@dataclass(slots=True)
class FailPoint:
    mode: Any = "off"
    data: dict[str, Any] = field(default_factory=dict)
    times_left: int | None = None
    skip_left: int = 0
    probability: float = 1.0
    fired: int = 0

    def configure(self, mode: Any, data: Mapping[str, Any]) -> int:
        previous = self.fired
        self.mode, self.data, self.fired = mode, dict(data), 0
        self.times_left, self.skip_left, self.probability = None, 0, 1.0
        if isinstance(mode, Mapping):
            if "times" in mode:
                self.times_left = int(mode["times"])
            if "skip" in mode:
                self.skip_left = int(mode["skip"])
            if "activationProbability" in mode:
                self.probability = float(mode["activationProbability"])
        elif mode not in ("alwaysOn", "off"):
            raise MongoError(2, f"unknown fail point mode: {mode!r}")
        return previous

    @property
    def active(self) -> bool:
        return self.mode != "off" and self.times_left != 0

    def should_fire(self) -> bool:
        if not self.active:
            return False
        if self.skip_left > 0:
            self.skip_left -= 1
            return False
        if self.probability < 1.0 and random.random() >= self.probability:
            return False
        if self.times_left is not None:
            self.times_left -= 1
        self.fired += 1
        return True


class FailPoints:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.points: dict[str, FailPoint] = {name: FailPoint() for name in KNOWN}
        # Called after every configureFailPoint (a replica set member's applier waits
        # on stopReplProducer and must wake when it is turned off).
        self.on_configure: Callable[[], None] | None = None

    def configure(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        if not self.enabled:
            raise MongoError(59, "no such command: 'configureFailPoint'")
        name = cmd["configureFailPoint"]
        point = self.points.get(name)
        if point is None:
            raise MongoError(2, f"Cannot find fail point named {name}")
        count = point.configure(cmd.get("mode", "off"), cmd.get("data") or {})
        if self.on_configure is not None:
            self.on_configure()
        return {"count": count}

    def for_command(self, command_name: str, app_name: str | None) -> dict[str, Any] | None:
        """The failCommand data if it fires for this command now, else None."""
        point = self.points["failCommand"]
        if not point.active or command_name in EXEMPT:
            return None
        data = point.data
        if command_name not in data.get("failCommands", []):
            return None
        if "appName" in data and data["appName"] != app_name:
            return None
        return dict(data) if point.should_fire() else None

    def after_cursor_checkout(self, command_name: str) -> None:
        point = self.points["failGetMoreAfterCursorCheckout"]
        if point.should_fire():
            code = int(point.data.get("errorCode", 1))
            raise MongoError(code, "Failing command via 'failGetMoreAfterCursorCheckout' failpoint")

    def transactional_write(self) -> dict[str, Any] | None:
        """onPrimaryTransactionalWrite's data if it fires for this statement, else None."""
        point = self.points["onPrimaryTransactionalWrite"]
        return dict(point.data) if point.should_fire() else None

    def check_max_time(self, cmd: Mapping[str, Any]) -> None:
        """maxTimeAlwaysTimeOut: a command with maxTimeMS times out at once."""
        if cmd.get("maxTimeMS") and self.points["maxTimeAlwaysTimeOut"].should_fire():
            raise MongoError(50, "operation exceeded time limit")

    def stop_repl_producer(self) -> bool:
        """stopReplProducer: whether the member must not fetch from its sync source now."""
        return self.points["stopReplProducer"].should_fire()
