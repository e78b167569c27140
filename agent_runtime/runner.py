"""Executing one function call and recording it in the run history, whatever triggered it.

The scheduler adds leases and fencing around `execute`; the HTTP endpoints call `run_now`,
`start_now` and `chat`. Every run counts against `limits.maxConcurrentRuns`, whatever started
it: the scheduler claims nothing while the replica is full, and a manual, webhook or chat run
that would exceed it is refused (`AtCapacity`) rather than started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from agent_api import models
from agent_api.db import queries
from agent_runtime import config, functions, metrics, spec, state
from agent_runtime.ai import engine, loop, memory, redaction, tools

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # 'succeeded' | 'failed'
    error: str | None
    output: dict[str, Any] | None  # for prompt functions: carries `stop_reason`

    @classmethod
    def of_loop(cls, result: loop.LoopResult, limits: loop.Limits) -> Outcome:
        """A finished agent loop: `completed` succeeds; a limit or an error fails the run."""
        if result.stop_reason == "completed":
            return cls("succeeded", None, engine.summary(result))
        return cls("failed", result.error or result.limit_message(limits), engine.summary(result))


# What `execute` returns when `may_start` said no: the function was not called.
NOT_STARTED = Outcome("failed", "not started: the run's lease was no longer its own", None)


class UnknownFunction(LookupError):
    pass


class AtCapacity(Exception):
    """The replica already runs `limits.maxConcurrentRuns` runs; the message says so."""

    def __init__(self, busy: int, limit: int) -> None:
        super().__init__(
            f"this replica is running {busy} of {limit} runs at once (spec.limits.maxConcurrentRuns = "
            f"{limit}); try again shortly, or raise the limit")


class Runner:
    def __init__(self, pool: asyncpg.Pool, identity: config.Identity,
                 watcher: config.ConfigWatcher, counters: metrics.Metrics) -> None:
        self._pool = pool
        self._identity = identity
        self._watcher = watcher
        self._metrics = counters
        self._session: aiohttp.ClientSession | None = None
        self.manual_in_flight = 0
        # Runs in flight on this replica, every trigger counted; the scheduler replaces it with
        # its own count (claimed fires, claims in progress and these runs).
        self.occupied: Callable[[], int] = lambda: self.manual_in_flight
        self._detached: set[asyncio.Task[Outcome]] = set()  # webhook and manual runs
        self.ai = engine.Engine(pool, engine.Identity(identity.namespace, identity.cluster,
                                                      identity.replica), self._http_session,
                                counted=counters.counting)
        self.memory = memory.Memory(pool, identity.namespace, identity.cluster, identity.replica)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def state_store(self, fence: tuple[int, int] | None = None) -> state.StateStore:
        """The replica's state; with `fence` (fire id, lease token), writes are refused once
        that lease is no longer this run's."""
        limits = self._watcher.current.limits if self._watcher.current else None
        return state.StateStore(
            self._pool, self._identity.namespace, self._identity.cluster, self._identity.replica,
            limits.state_max_value_bytes if limits else 64 * 1024,
            limits.state_max_total_bytes if limits else 1024 * 1024,
            fence=fence,
        )

    async def start_run(self, function: str, trigger: str) -> int:
        """Record a run not tied to a fire (webhook, manual, chat); ClaimFires records the
        scheduled ones."""
        i = self._identity
        return await self._pool.fetchval(queries.SQL["InsertRun"], i.namespace, i.cluster,
                                         i.replica, trigger, function)

    async def finish_run(self, run_id: int, trigger: str, status: str, error: str | None,
                         output: dict[str, Any] | None) -> None:
        self._metrics.run_finished(trigger, status)
        await self._pool.execute(queries.SQL["FinishRun"], run_id, status,
                                 *self.recordable(error, output))

    @staticmethod
    def recordable(error: str | None, output: dict[str, Any] | None) -> tuple[str | None, str | None]:
        """A run's error and output as stored: whatever a function, a provider or a library
        put in them, no secret is stored."""
        return (None if error is None else redaction.scrub(error),
                None if output is None else json.dumps(redaction.scrub_json(output)))

    async def execute(self, function_name: str, *, trigger: str, schedule: str | None,
                      fire_time: dt.datetime | None, attempt: int, idempotency_key: str,
                      payload: dict[str, Any], run_id: int | None = None,
                      fence: tuple[int, int] | None = None,
                      state: dict[str, Any] | None = None,
                      may_start: Callable[[], bool] | None = None) -> Outcome:
        """Run the function under the spec's run timeout; never raises for function errors.

        `fence` (fire id, lease token) makes the run's state writes conditional on its lease;
        `state` is the replica's state already read for it (else it is read here);
        `may_start` is asked right before the function is called (after every await of the
        run's preparation): False means the run's lease is no longer its own, and the function
        is not called at all (the outcome is `NOT_STARTED`, for the caller to hand back).
        """
        with self._metrics.timed_run(trigger):
            return await self._execute(function_name, trigger=trigger, schedule=schedule, fire_time=fire_time,
                                       attempt=attempt, idempotency_key=idempotency_key, payload=payload,
                                       run_id=run_id, fence=fence, state=state, may_start=may_start)

    async def _execute(self, function_name: str, *, trigger: str, schedule: str | None,
                       fire_time: dt.datetime | None, attempt: int, idempotency_key: str,
                       payload: dict[str, Any], run_id: int | None = None,
                       fence: tuple[int, int] | None = None,
                       state: dict[str, Any] | None = None,
                       may_start: Callable[[], bool] | None = None) -> Outcome:
        current = self._watcher.current
        function = current.functions.get(function_name) if current else None
        if function is None:
            return Outcome("failed", f"function {function_name!r} is not defined", None)
        try:
            context = functions.RunContext(
                agent=self._identity.cluster, namespace=self._identity.namespace,
                replica=self._identity.replica, function=function_name, trigger=trigger,
                schedule=schedule, fire_time=fire_time.isoformat() if fire_time else None,
                attempt=attempt, idempotency_key=idempotency_key, payload=payload,
                state=state if state is not None else await self.state_store().items(),
            )
            # No await from here to the function's first step: a replica frozen while it
            # prepared the run (or whose state read waited past the lease) wakes up with
            # the read's answer and its overdue lease deadline ready at the same instant, and
            # must not start work another replica may already be doing.
            if may_start is not None and not may_start():
                return NOT_STARTED
            if function.prompt is not None:
                looped = await asyncio.wait_for(
                    self._run_prompt(current, function, context, run_id, depth=0, fence=fence),
                    current.limits.run_timeout_seconds,
                )
                return Outcome.of_loop(looped, engine.Engine.limits(current))
            result = await asyncio.wait_for(
                functions.invoke(function, context, self._http_session()),
                current.limits.run_timeout_seconds,
            )
        except TimeoutError:
            return Outcome("failed", f"timed out after {current.limits.run_timeout_seconds} s "
                                     "(spec.limits.runTimeoutSeconds)", None)
        except Exception as error:  # a function may raise anything; it is recorded, not fatal
            return Outcome("failed", f"{type(error).__name__}: {error}"[:2000], None)
        return Outcome("succeeded", None, functions.summarize(result))

    async def run_now(self, function_name: str, trigger: str, payload: dict[str, Any],
                      idempotency_key: str | None) -> tuple[int, Outcome]:
        """A run not tied to a fire (webhook, manual), answered when it has finished."""
        run_id, task = await self.start_now(function_name, trigger, payload, idempotency_key)
        # Shielded: a caller that hangs up does not cut the run short; it finishes and is recorded.
        return run_id, await asyncio.shield(task)

    async def start_now(self, function_name: str, trigger: str, payload: dict[str, Any],
                        idempotency_key: str | None) -> tuple[int, asyncio.Task[Outcome]]:
        """Record a run not tied to a fire and start it; the task finishes and records it."""
        current = self._watcher.current
        if current is None or function_name not in current.functions:
            raise UnknownFunction(function_name)
        self.admit(current)
        self.manual_in_flight += 1
        self._metrics.in_flight.inc()
        try:
            run_id = await self.start_run(function_name, trigger)
        except BaseException:
            self.manual_in_flight -= 1
            self._metrics.in_flight.dec()
            raise
        task = asyncio.create_task(self._complete_now(
            run_id, function_name, trigger, payload, idempotency_key or f"{trigger}:{uuid.uuid4()}"))
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)
        return run_id, task

    def current_spec(self) -> spec.RuntimeSpec | None:
        return self._watcher.current

    def admit(self, current: spec.RuntimeSpec) -> None:
        """AtCapacity if a run started now would exceed `limits.maxConcurrentRuns`. The
        callers that start a run leave no await between this check and the count going up, so
        concurrent requests cannot both take the last slot."""
        busy, limit = self.occupied(), current.limits.max_concurrent_runs
        if busy >= limit:
            raise AtCapacity(busy, limit)

    async def _complete_now(self, run_id: int, function_name: str, trigger: str, payload: dict[str, Any],
                            idempotency_key: str) -> Outcome:
        try:
            outcome = await self.execute(
                function_name, trigger=trigger, schedule=None, fire_time=None, attempt=1,
                idempotency_key=idempotency_key, payload=payload, run_id=run_id,
            )
            await self.finish_run(run_id, trigger, outcome.status, outcome.error, outcome.output)
            return outcome
        except asyncio.CancelledError:
            await asyncio.shield(self.finish_run(
                run_id, trigger, "failed", "interrupted: the replica shut down before the run finished", None))
            raise
        finally:
            self.manual_in_flight -= 1
            self._metrics.in_flight.dec()

    async def drain_manual(self, grace_seconds: float) -> None:
        """On shutdown: let webhook and manual runs finish within the grace period, then
        interrupt the rest (each is recorded as failed, never left 'running')."""
        if not self._detached:
            return
        _, pending = await asyncio.wait(set(self._detached), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def chat(self, message: str, conversation_id: str) -> tuple[int, loop.LoopResult]:
        """One chat turn, recorded in the run history (trigger `chat`): two statements
        (memory.Memory.begin, memory.Memory.finish), whatever the conversation's length."""
        current = self._watcher.current
        if current is None or current.ai is None:
            raise engine.EngineNotConfigured("this agent has no AI engine: spec.ai is not set")
        self.admit(current)
        self.manual_in_flight += 1
        self._metrics.in_flight.inc()
        try:
            budget = current.limits.memory_max_tokens
            turn = await self.memory.begin(conversation_id, budget, tools.SYSTEM_PROMPT_KEY)
            try:
                # asyncio.timeout, not wait_for: the turn runs in this task, no task of its own.
                with self._metrics.timed_run("chat"):
                    async with asyncio.timeout(current.limits.run_timeout_seconds):
                        result = await self.ai.chat(current, message, turn, self.state_store())
            except TimeoutError:
                result = loop.LoopResult(stop_reason="error", error=(
                    f"timed out after {current.limits.run_timeout_seconds} s "
                    "(spec.limits.runTimeoutSeconds)"))
            except Exception as error:  # recorded and answered, never fatal to the server
                result = loop.LoopResult(stop_reason="error",
                                         error=redaction.scrub(f"{type(error).__name__}: {error}"))
            outcome = Outcome.of_loop(result, engine.Engine.limits(current))
            self._metrics.run_finished("chat", outcome.status)
            # Only a completed exchange is remembered; a failed one is recorded in the run.
            exchange = (message, result.reply) if result.stop_reason == "completed" else None
            await self.memory.finish(turn.run_id, outcome.status, *self.recordable(outcome.error, outcome.output),
                                     conversation_id, budget, exchange)
            result.error = outcome.error
            return turn.run_id, result
        finally:
            self.manual_in_flight -= 1
            self._metrics.in_flight.dec()

    async def _run_prompt(self, current: spec.RuntimeSpec, function: models.Function,
                          context: functions.RunContext, run_id: int | None,
                          depth: int, fence: tuple[int, int] | None = None) -> loop.LoopResult:
        async def call_function(name: str, payload: dict[str, Any], depth: int) -> Any:
            return await self._call_function_tool(context, run_id, name, payload, depth, fence)

        return await self.ai.run_prompt(current, function, context.payload, context.fields(),
                                        self.state_store(fence), run_id, call_function, depth)

    async def _call_function_tool(self, parent: functions.RunContext, run_id: int | None,
                                  name: str, payload: dict[str, Any], depth: int,
                                  fence: tuple[int, int] | None = None) -> Any:
        """A function the model called as a tool, with the calling run's identity."""
        current = self._watcher.current
        function = current.functions.get(name) if current else None
        if function is None:
            raise functions.FunctionError(f"function {name!r} is not defined")
        context = dataclasses.replace(parent, function=name, payload=payload)
        if function.prompt is None:
            return await functions.invoke(function, context, self._http_session())
        result = await self._run_prompt(current, function, context, run_id, depth, fence)
        if result.stop_reason != "completed":
            raise functions.FunctionError(result.error or result.limit_message(
                engine.Engine.limits(current)) or result.stop_reason)
        return result.reply

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session
