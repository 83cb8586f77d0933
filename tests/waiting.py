"""Bounded waiting for tests: poll a condition often, give up after a deadline."""

import asyncio
import time


async def until(condition, timeout=5.0):
    """Return once ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)
