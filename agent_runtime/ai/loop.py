"""The agent loop: ask the model, run the tools it asks for, give it the results, repeat,
until it answers or a limit stops it.

Limits come from `spec.limits` and are checked where they can be crossed:

- `max_iterations`: model calls; the loop stops before a call past it;
- `max_tokens`: prompt plus completion tokens reported by the provider, summed over calls;
  each call asks for at most the tokens left, and the loop stops once the sum reaches it;
- `max_wall_clock`: seconds for the whole loop, tool calls included; a model or tool call
  still running at the deadline is cancelled;
- `max_function_calls`: tool calls; a call past it is not run.

A stop for a limit is a stop reason, not an exception: the result carries the reason, the
counters and the last text, and the caller records it in the run history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from agent_runtime.ai import providers, tools

StopReason = Literal["completed", "max_iterations", "max_tokens", "max_wall_clock",
                     "max_function_calls", "error"]

LIMIT_FIELDS = {"max_iterations": "maxIterations", "max_tokens": "maxTokens",
                "max_wall_clock": "maxWallClockSeconds", "max_function_calls": "maxFunctionCalls"}


@dataclass(frozen=True)
class Limits:
    max_iterations: int = 10
    max_tokens: int = 100_000
    max_wall_clock_seconds: float = 600.0
    max_function_calls: int = 20


@dataclass
class LoopResult:
    stop_reason: StopReason = "completed"
    reply: str = ""
    error: str | None = None
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    function_calls: int = 0
    tools_called: list[str] = field(default_factory=list)
    transcript: list[providers.Message] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def limit_message(self, limits: Limits) -> str | None:
        """A readable sentence for a stop caused by a limit."""
        if self.stop_reason not in LIMIT_FIELDS:
            return None
        value = {"max_iterations": limits.max_iterations, "max_tokens": limits.max_tokens,
                 "max_wall_clock": limits.max_wall_clock_seconds,
                 "max_function_calls": limits.max_function_calls}[self.stop_reason]
        return (f"stopped by {self.stop_reason}: spec.limits.{LIMIT_FIELDS[self.stop_reason]} = "
                f"{value} (iterations {self.iterations}, tokens {self.tokens}, "
                f"function calls {self.function_calls})")


async def run(provider: providers.Provider, system: str | None,
              messages: list[providers.Message], toolbox: tools.Toolbox, limits: Limits,
              clock: Callable[[], float] = time.monotonic) -> LoopResult:
    result = LoopResult(transcript=list(messages))
    deadline = clock() + limits.max_wall_clock_seconds
    specs = toolbox.specs()
    while True:
        if result.iterations >= limits.max_iterations:
            return _stop(result, "max_iterations")
        tokens_left = limits.max_tokens - result.tokens
        if tokens_left <= 0:
            return _stop(result, "max_tokens")
        try:
            async with asyncio.timeout(deadline - clock()):
                completion = await provider.complete(
                    system, result.transcript, specs,
                    min(providers.DEFAULT_MAX_OUTPUT_TOKENS, tokens_left))
        except TimeoutError:
            return _stop(result, "max_wall_clock")
        except providers.ProviderError as error:
            result.stop_reason, result.error = "error", str(error)
            return result
        except Exception as error:  # an SDK's own failure (bad settings, odd response)
            result.stop_reason = "error"
            result.error = f"{provider.name}: {type(error).__name__}: {error}"
            return result
        result.iterations += 1
        result.input_tokens += completion.input_tokens
        result.output_tokens += completion.output_tokens
        result.reply = completion.text or result.reply
        result.transcript.append(
            providers.Message("assistant", completion.text, completion.tool_calls))
        if not completion.tool_calls:
            return _stop(result, "completed")
        if result.tokens >= limits.max_tokens:
            return _stop(result, "max_tokens")
        for call in completion.tool_calls:
            if result.function_calls >= limits.max_function_calls:
                return _stop(result, "max_function_calls")
            result.function_calls += 1
            result.tools_called.append(call.name)
            try:
                async with asyncio.timeout(deadline - clock()):
                    outcome = await toolbox.call(call)
            except TimeoutError:
                return _stop(result, "max_wall_clock")
            result.transcript.append(providers.Message(
                "tool", outcome.text, tool_call_id=call.id, is_error=outcome.is_error))


def _stop(result: LoopResult, reason: StopReason) -> LoopResult:
    result.stop_reason = reason
    return result
