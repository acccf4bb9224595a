"""A blocking call of the simulated target that has not finished yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from synack.drill.target import SyscallResult

Retry = Callable[[], "SyscallResult | None"]


@dataclass(slots=True)
class Block:
    """A blocking call that has not finished: ``retry()`` is None until it has;
    at ``deadline_us`` (poll's timeout) it returns ``on_timeout()`` instead."""

    retry: Retry
    deadline_us: int | None = None
    on_timeout: Callable[[], SyscallResult] | None = None
