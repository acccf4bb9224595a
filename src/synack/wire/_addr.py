"""Cached IPv4 address conversions shared by the checksum and IPv4 modules.

A stack talks to a handful of addresses, so converting each once and caching the
result takes the string handling off the per-segment path.
"""

from __future__ import annotations

import functools
import socket

__all__ = ["aton", "ntoa"]


@functools.lru_cache(maxsize=4096)
def aton(address: str) -> int:
    """Dotted-quad string -> 32-bit int. Raises ``ValueError`` for anything else,
    including the short forms ``inet_aton`` accepts ("10.1"), so that every address
    has one spelling and records round-trip."""
    try:
        packed = socket.inet_aton(address)
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(f"not an IPv4 address: {address!r}") from exc
    if socket.inet_ntoa(packed) != address:
        raise ValueError(f"not a dotted-quad IPv4 address: {address!r}")
    return int.from_bytes(packed, "big")


@functools.lru_cache(maxsize=4096)
def ntoa(value: int) -> str:
    """32-bit int -> dotted-quad string."""
    return socket.inet_ntoa(value.to_bytes(4, "big"))
