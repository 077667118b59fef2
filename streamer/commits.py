"""Run a unit of work and its checkpoint advance as one transaction, exactly once.

Transient failures rerun the whole transaction (tenacity: exponential backoff with
jitter, bounded by ``retry_max_s``). A commit whose outcome is unknown may have landed;
its rerun then finds the checkpoint already moved, and :meth:`CheckpointStore.landed`
tells "it was us" (same batch id) from "another instance got there first".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from .checkpoints import Checkpoint, CheckpointStore
from .errors import CheckpointConflict
from .mongo import Mongo, Session
from .mongo.retries import OnRetry, retry_transient

T = TypeVar("T")


class Committer:
    def __init__(
        self,
        mongo: Mongo,
        store: CheckpointStore,
        *,
        retry_max_s: float,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.mongo = mongo
        self.store = store
        self.retry_max_s = retry_max_s
        self.on_retry = on_retry
        # The stream's long-lived writer session (see streamer.sessions), once opened.
        self.session: Session = None

    async def commit(
        self,
        current: Checkpoint,
        new: Checkpoint,
        work: Callable[[Session], Awaitable[T]],
        *,
        what: str,
    ) -> T:
        """Apply ``work`` and move the checkpoint from ``current`` to ``new`` atomically.

        Raises :class:`CheckpointConflict` if another instance moved the checkpoint.
        """
        # Results of attempts that reached their commit; one of them may have landed.
        committing: list[T] = []

        async def attempt() -> T:
            try:
                async with self.mongo.transaction(self.session) as session:
                    result = await work(session)
                    await self.store.advance(current, new, session=session)
                    committing.append(result)
                return result
            except CheckpointConflict:
                if committing and await self.store.landed(new):
                    return committing[-1]
                raise

        return await retry_transient(
            attempt, what=what, max_delay_s=self.retry_max_s, on_retry=self.on_retry
        )
