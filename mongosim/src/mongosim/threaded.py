"""mongosim on an event loop of its own, in a background thread.

Motor's ``close()`` (and some other driver calls) block the calling thread while the
driver talks to the server; with the server on the same event loop that would deadlock.
Tests therefore run the server on its own loop.

``traced=False`` keeps a tracer that was set for new threads (coverage's, under
``pytest --cov``) out of the server's thread. The thread runs only mongosim's code, so a
measurement of the service loses nothing, and a suite whose server answers every call
stops paying the tracer's cost on each of the server's function calls.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import Future
from typing import Any

from .replset import ReplicaSet
from .server import MongoSim


class ThreadedMongoSim:
    """``with ThreadedMongoSim(port=0) as sim: sim.uri`` — usable from sync or async code.

    ``members=3`` runs a ``ReplicaSet`` instead of one ``MongoSim``: ``replset`` is it, and
    ``call(coro)`` runs one of its coroutines (``kill``, ``step_down``...) on the server's
    loop from any thread; ``await acall(...)`` from async code."""

    def __init__(self, *, traced: bool = True, members: int = 1, **options: Any) -> None:
        self.options = options
        self.member_count = members
        self.sim: MongoSim | ReplicaSet | None = None
        self._traced = traced
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="mongosim", daemon=True)

    def _serve(self) -> None:
        if not self._traced:
            sys.settrace(None)
        self._loop.run_forever()

    @property
    def uri(self) -> str:
        assert self.sim is not None
        return self.sim.uri

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=60)

    def start(self) -> ThreadedMongoSim:
        self._thread.start()

        async def make() -> MongoSim | ReplicaSet:
            sim: MongoSim | ReplicaSet
            if self.member_count > 1:
                sim = ReplicaSet(self.member_count, **self.options)
            else:
                sim = MongoSim(**self.options)
            await sim.start()
            return sim

        try:
            self.sim = self._run(make())
        except BaseException:
            self.stop()  # a port in use, say: no thread or loop is left behind
            raise
        return self

    @property
    def replset(self) -> ReplicaSet:
        assert isinstance(self.sim, ReplicaSet), "started with members=1"
        return self.sim

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (a ReplicaSet's kill, step_down...)."""
        return self._run(coro)

    async def acall(self, coro: Any) -> Any:
        return await asyncio.to_thread(self._run, coro)

    def stop(self) -> None:
        """Stop the server and its thread; a second call does nothing."""
        if self._loop.is_closed():
            return
        if self.sim is not None:
            self._run(self.sim.close())
            self.sim = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> ThreadedMongoSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> ThreadedMongoSim:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
