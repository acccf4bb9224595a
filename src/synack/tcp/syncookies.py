"""SYN cookies: a listener's stateless answer to a full SYN queue.

Theory of operation
-------------------
RFC 4987 section 3.6: instead of keeping a half-open request, the listener
encodes it in the ISN of its SYN,ACK (the *cookie*) and forgets it. A genuine
client's final ACK carries ``cookie + 1`` in its acknowledgment field; the
listener checks it and only then creates the connection.

The arithmetic is Linux's (``net/ipv4/syncookies.c``, ``secure_tcp_syn_cookie()``
and ``check_tcp_syn_cookie()``)::

    cookie = H1(tuple) + client_isn + (count << 24) + ((H2(tuple, count) + data) mod 2^24)

where ``H1``/``H2`` are keyed hashes of the 4-tuple (Linux: siphash; here
BLAKE2b with the stack's secret), ``count`` is a coarse clock that ticks once a
minute (``tcp_cookie_time()``), and ``data`` is an index into a small table of
MSS values (``msstab``). A cookie is valid while its count is this minute's or
the last one (``MAX_SYNCOOKIE_AGE`` = 2): one to two minutes.

With timestamps, the low 6 bits of the SYN,ACK's TSval carry the peer's window
scale (4 bits, 0xF for none), SACK-permitted (1 bit) and ECN (1 bit, always 0
here) -- Linux ``cookie_init_timestamp()``; the ACK echoes them in TSecr. Without
timestamps those options are lost: the connection runs without them.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
PERIOD_US = 60 * 1_000_000     # Linux TCP_SYNCOOKIE_PERIOD: the count ticks each minute
MAX_AGE = 2                    # Linux MAX_SYNCOOKIE_AGE: this minute's count or the last
VALID_US = 2 * PERIOD_US       # Linux TCP_SYNCOOKIE_VALID: cookies are checked this long
                               # after the last one was sent (tcp_synq_no_recent_overflow)
MSS_TABLE = (536, 1300, 1440, 1460)   # Linux msstab (IPv4)
MSS_TABLE6 = (1220, 1420, 1440, 8940)  # Linux msstab6: MTUs 1280, 1480, 1500, 9000 less 60
TS_OPT_MASK = 0x3F             # Linux TSMASK: low TSval bits holding the options
TS_WSCALE_NONE = 0xF           # Linux TS_OPT_WSCALE_MASK: "no window scaling"
TS_SACK = 1 << 4               # Linux TS_OPT_SACK

Tuple4 = tuple[str, int, str, int]   # remote ip, remote port, local ip, local port


def _hash(secret: bytes, tup: Tuple4, salt: int) -> int:
    """A 32-bit keyed hash of the 4-tuple and ``salt``."""
    data = f"{tup[0]}|{tup[1]}|{tup[2]}|{tup[3]}|{salt}".encode()
    return int.from_bytes(hashlib.blake2b(data, key=secret, digest_size=4).digest(), "big")


def cookie_count(now: int) -> int:
    """The coarse clock the cookie carries (Linux ``tcp_cookie_time()``)."""
    return now // PERIOD_US


def _table(tup: Tuple4) -> tuple[int, ...]:
    """The MSS table of the tuple's address family (the hash covers all 128 bits of an
    IPv6 address: it is taken over the full text)."""
    return MSS_TABLE6 if ":" in tup[0] else MSS_TABLE


def mss_index(mss: int, table: tuple[int, ...] = MSS_TABLE) -> int:
    """The largest MSS table entry not above the peer's MSS (Linux
    ``cookie_v4_init_sequence``, ``cookie_v6_init_sequence`` with ``MSS_TABLE6``)."""
    for i in range(len(table) - 1, 0, -1):
        if mss >= table[i]:
            return i
    return 0


def make_cookie(secret: bytes, tup: Tuple4, client_isn: int, mss: int, now: int) -> int:
    """The ISN of a cookie SYN,ACK answering a SYN with ``client_isn`` and ``mss``."""
    count = cookie_count(now)
    data = mss_index(mss, _table(tup))
    return (_hash(secret, tup, 0) + client_isn + (count << COOKIE_BITS)
            + ((_hash(secret, tup, count) + data) & COOKIE_MASK)) & 0xFFFFFFFF


def check_cookie(secret: bytes, tup: Tuple4, client_isn: int, cookie: int,
                 now: int) -> int | None:
    """The MSS encoded in a valid ``cookie`` (the final ACK's ack - 1), else None.

    ``client_isn`` is the ACK's seq - 1. Linux ``check_tcp_syn_cookie()`` and
    ``__cookie_v4_check()``: wrong hash, or a count older than ``MAX_AGE``, fails.
    """
    count = cookie_count(now)
    c = (cookie - _hash(secret, tup, 0) - client_isn) & 0xFFFFFFFF
    diff = (count - (c >> COOKIE_BITS)) & (0xFFFFFFFF >> COOKIE_BITS)
    if diff >= MAX_AGE:
        return None
    data = (c - _hash(secret, tup, count - diff)) & COOKIE_MASK
    table = _table(tup)
    return table[data] if data < len(table) else None


def ts_offset(secret: bytes, tup: Tuple4) -> int:
    """A per-connection TSval offset the listener can recompute (Linux ``secure_tcp_ts_off``)."""
    return _hash(secret, tup, -1)


def encode_ts(tsval: int, wscale: int | None, sack: bool) -> int:
    """The SYN,ACK's TSval carrying the peer's options (Linux ``cookie_init_timestamp()``).

    The options replace the low bits of the clock; if that moves the value ahead
    of the clock, it is taken back by one step so TSval never runs ahead.
    """
    opts = (TS_WSCALE_NONE if wscale is None else min(wscale, 14)) | (TS_SACK if sack else 0)
    ts = (tsval & ~TS_OPT_MASK & 0xFFFFFFFF) | opts
    if ts > tsval:
        ts = (ts - (TS_OPT_MASK + 1)) & 0xFFFFFFFF
    return ts


@dataclass(frozen=True, slots=True)
class TsOptions:
    """The peer's options, recovered from the TSecr of its final ACK."""

    wscale: int | None
    sack: bool


def decode_ts(tsecr: int) -> TsOptions:
    """Undo :func:`encode_ts` (Linux ``cookie_timestamp_decode()``)."""
    ws = tsecr & 0xF
    return TsOptions(None if ws == TS_WSCALE_NONE else ws, bool(tsecr & TS_SACK))


def new_secret(bits: int) -> bytes:
    """The hash key from ``bits`` random bits (the caller's seeded RNG)."""
    return struct.pack(">QQ", bits >> 64 & (2**64 - 1), bits & (2**64 - 1))
