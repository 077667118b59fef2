"""Run a unit of work and its checkpoint advance as one transaction, exactly once.

Transient failures rerun the whole transaction (:func:`retry_transient`: exponential
backoff with jitter, bounded by ``retry_max_s``). A commit whose outcome is unknown is
first retried in place by the seam (commitTransaction is idempotent), within what
remains of that same budget, never a budget of its own. If it is still unknown the
transaction is rerun: the rerun then finds the checkpoint already moved, and
:meth:`CheckpointStore.landed` tells "it was us" (same batch id) from "another instance
got there first".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..core.checkpoint import Checkpoint
from ..core.errors import CheckpointConflict
from ..mongo import Mongo, Session
from ..mongo.retries import OnRetry, RetryPolicy, retry_transient
from .checkpoints import CheckpointStore

T = TypeVar("T")


class Committer:
    def __init__(
        self,
        mongo: Mongo,
        store: CheckpointStore,
        *,
        retry_max_s: float | None = None,
        policy: RetryPolicy | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.mongo = mongo
        self.store = store
        self.policy = policy or RetryPolicy()
        if retry_max_s is not None:
            self.policy = dataclasses.replace(self.policy, max_s=retry_max_s)
        self.on_retry = on_retry
        # The stream's long-lived writer session (see streamer.runtime.sessions), once opened.
        self.session: Session | None = None

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
                    # The compare-and-set first: a batch whose checkpoint moved on (another
                    # owner, a repartition's drain) is refused before it reads a mirror
                    # that has moved on too, where replaying it would make no sense.
                    await self.store.advance(current, new, session=session)
                    result = await work(session)
                    committing.append(result)
                return result
            except CheckpointConflict:
                if committing and await self.store.landed(new):
                    return committing[-1]
                raise

        return await retry_transient(attempt, what=what, policy=self.policy, on_retry=self.on_retry)
