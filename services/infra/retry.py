"""Retrying an operation while a server is away: exponential backoff, never a spin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    max_delay_s: float = 5.0,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run `operation` until it succeeds; transient errors wait and try again.

    Any other exception propagates; cancellation (shutdown) ends the wait.
    """
    delay = 0.05
    while True:
        try:
            return await operation()
        except transient as error:
            if on_retry is not None:
                on_retry(error)
            log.warning("%s failed (%s); retrying in %.2f s", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
