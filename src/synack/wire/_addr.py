"""Cached IPv4 and IPv6 address conversions shared by the checksum and IP modules.

A stack talks to a handful of addresses, so converting each once and caching the
result takes the string handling off the per-segment path.
"""

from __future__ import annotations

import functools
import socket

__all__ = ["NAMES", "aton", "aton6", "name_of", "ntoa", "ntoa6"]


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


#: 32-bit int -> dotted quad, for the receive path's inline lookup (``NAMES[value]``, a
#: subscript where :func:`ntoa` is a call); :func:`name_of` fills it on a miss. Bounded:
#: a host that meets more than ``NAMES_MAX`` addresses starts it afresh.
NAMES: dict[int, str] = {}
NAMES_MAX = 4096


def name_of(value: int) -> str:
    """:func:`ntoa` of ``value``, remembered in :data:`NAMES`."""
    if len(NAMES) >= NAMES_MAX:
        NAMES.clear()
    name = NAMES[value] = ntoa(value)
    return name


@functools.lru_cache(maxsize=4096)
def aton6(address: str) -> bytes:
    """IPv6 text -> 16 bytes. Any spelling ``inet_pton`` accepts is taken (records
    built from parsed packets use :func:`ntoa6`'s spelling, so they round-trip);
    anything else raises ``ValueError``."""
    try:
        return socket.inet_pton(socket.AF_INET6, address)
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(f"not an IPv6 address: {address!r}") from exc


@functools.lru_cache(maxsize=4096)
def ntoa6(packed: bytes) -> str:
    """16 bytes -> the compressed lowercase text ``inet_ntop`` gives (RFC 5952;
    an IPv4-mapped address as ``::ffff:192.0.2.1``)."""
    return socket.inet_ntop(socket.AF_INET6, packed)
