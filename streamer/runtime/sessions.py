"""Writer sessions: one long-lived session per stream (per partition of a split stream),
and cleaning up after a crash.

A process killed inside a transaction leaves that transaction open on the server,
holding its documents: every later transaction touching them fails with WriteConflict
until the server reaps it (transactionLifetimeLimitSeconds, 60 s by default). So each
stream writes through one session whose id is recorded in ``streamer_sessions`` under
this instance's name; when the instance starts again (a restarted pod keeps its
hostname) it kills its predecessor's session first (killSessions), which aborts the
orphaned transaction at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog

from ..core.checkpoint import FORMAT
from ..core.errors import CommandError, FatalDatabaseError
from ..mongo import Mongo, Session

log = structlog.get_logger("streamer.sessions")

COLLECTION = "streamer_sessions"


class WriterSessions:
    def __init__(self, mongo: Mongo, owner: str) -> None:
        self.mongo = mongo
        self.owner = owner

    def _key(self, stream: str) -> str:
        return f"{stream}@{self.owner}"

    async def open(self, stream: str) -> Session:
        """A fresh session for ``stream``, after killing the one this instance left behind."""
        key = self._key(stream)
        previous = await self.mongo.find_one(COLLECTION, {"_id": key})
        session = await self.mongo.start_session()
        lsid: dict[str, Any] = dict(session.session_id)
        if previous is not None and previous.get("lsid") and previous["lsid"] != lsid:
            try:
                await self.mongo.kill_sessions([previous["lsid"]])
                log.info("session.previous_killed", stream=stream)
            except (CommandError, FatalDatabaseError) as exc:
                # Without the privilege (13) the orphan simply times out on the server.
                log.warning("session.kill_refused", stream=stream, code=exc.code)
        await self.mongo.update_one(
            COLLECTION,
            {"_id": key},
            {
                "$set": {
                    "lsid": lsid,
                    "stream": stream,
                    "owner": self.owner,
                    "format": FORMAT,
                    "opened_at": dt.datetime.now(dt.UTC),
                }
            },
            upsert=True,
        )
        return session

    async def kill_owner(self, stream: str, owner: str) -> None:
        """Kill the writer session another (dead) instance left on ``stream``."""
        record = await self.mongo.find_one(COLLECTION, {"_id": f"{stream}@{owner}"})
        if record is None or not record.get("lsid"):
            return
        try:
            await self.mongo.kill_sessions([record["lsid"]])
            log.info("session.previous_owner_killed", stream=stream, owner=owner)
        except (CommandError, FatalDatabaseError) as exc:
            log.warning("session.kill_refused", stream=stream, code=exc.code)
