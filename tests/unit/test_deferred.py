"""The one deferred-value primitive: a value now, or one future plus the steps that
make the value from it - however many layers add a step, one future and one done
callback."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.deferred import Deferred, when


def test_a_plain_value_is_handled_at_once():
    assert when(20, lambda v: v + 1) == 21


def test_steps_on_a_future_share_that_one_future_and_run_in_order():
    async def go() -> None:
        future = asyncio.get_running_loop().create_future()
        steps: list[str] = []
        first = when(future, lambda v: steps.append("first") or v + 1)
        second = first.then(lambda v: steps.append("second") or v * 10)
        assert isinstance(second, Deferred) and second.future is future
        assert steps == []  # nothing runs before the future is done
        future.set_result(1)
        assert await second == 20 and second.result() == 20
        assert steps == ["first", "second", "first", "second"]  # each result() runs them
    asyncio.run(go())


def test_a_failed_future_raises_from_result_and_await():
    async def go() -> None:
        future = asyncio.get_running_loop().create_future()
        deferred = when(future, lambda v: v)
        future.set_exception(KeyError("gone"))
        with pytest.raises(KeyError):
            deferred.result()
        with pytest.raises(KeyError):
            await deferred
    asyncio.run(go())
