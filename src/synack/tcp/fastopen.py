"""TCP Fast Open (RFC 7413): cookies, the option, the client's cookie cache.

Theory of operation
-------------------
A client that has never talked to a server sends a SYN with an empty Fast Open
option (a *cookie request*); a server with Fast Open enabled answers it with a
cookie in its SYN,ACK. Next time the client puts the cookie and data in its SYN;
the server checks the cookie, creates the connection at once, hands the data to
the application and acknowledges it in the SYN,ACK: the request reaches the
server one round trip earlier. A bad cookie costs nothing but the saving: the
server ignores the data, acknowledges only the SYN (and sends a good cookie), and
the client sends the data again after the handshake.

Linux is followed throughout (``net/ipv4/tcp_fastopen.c``):

* the cookie is SipHash-2-4 of the client's and the server's IP addresses (in that
  order, as they stand in the SYN's IP header) under the 128-bit key, 8 bytes,
  little-endian (``__tcp_fastopen_cookie_gen_cipher()``); a listener has its own key
  (``TCP_FASTOPEN_KEY``) or uses the host's (``net.ipv4.tcp_fastopen_key``), a
  primary and an optional backup, both accepted;
* the option is kind 34, or the experimental kind 254 with magic 0xF989; a server
  answers in the form it was asked in; a cookie of 4 to 16 bytes of even length is
  read, other lengths are ignored (``tcp_parse_fastopen_option()``);
* ``net.ipv4.tcp_fastopen`` bits: 0x1 client, 0x2 server, 0x4 client data without a
  cookie, 0x200 server accepts data without a cookie, 0x400 every listener is a
  Fast Open one without ``TCP_FASTOPEN``;
* the client remembers per destination address the cookie, the MSS the server
  announced, and whether Fast Open SYNs got lost (``tcp_fastopen_cache_set()``).

This module is pure data and arithmetic; the connection and the host apply it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from synack.wire.tcp import TcpSegment

# net.ipv4.tcp_fastopen bits (include/net/tcp.h).
TFO_CLIENT_ENABLE = 0x1
TFO_SERVER_ENABLE = 0x2
TFO_CLIENT_NO_COOKIE = 0x4
TFO_SERVER_COOKIE_NOT_REQD = 0x200
TFO_SERVER_WO_SOCKOPT1 = 0x400

OPT_FASTOPEN = 34
OPT_EXP = 254
EXP_MAGIC = b"\xf9\x89"          # RFC 7413 4.1.1: the experimental option's magic
COOKIE_MIN, COOKIE_MAX = 4, 16   # Linux TCP_FASTOPEN_COOKIE_MIN / _MAX
COOKIE_SIZE = 8                  # what a Linux server makes
KEY_LEN = 16                     # TCP_FASTOPEN_KEY_LENGTH
MAX_OPTION_SPACE = 40            # Linux MAX_TCP_OPTION_SPACE: reserved out of SYN data

# tcpi_fastopen_client_fail values (include/uapi/linux/tcp.h).
TFO_STATUS_UNSPEC = 0
TFO_COOKIE_UNAVAILABLE = 1
TFO_DATA_NOT_ACKED = 2
TFO_SYN_RETRANSMITTED = 3

_M64 = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M64


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under a 16-byte ``key`` (Aumasson and Bernstein, 2012)."""
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:16], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def make_cookie(key: bytes, client: str, server: str) -> bytes:
    """The cookie a Linux server with ``key`` gives ``client`` (its address as the
    SYN's source) for ``server`` (the SYN's destination)."""
    data = ipaddress.ip_address(client).packed + ipaddress.ip_address(server).packed
    return siphash24(key, data).to_bytes(8, "little")


def parse_keys(text: str) -> tuple[bytes, ...]:
    """``net.ipv4.tcp_fastopen_key``: ``xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx``, and
    optionally ``,`` and a backup key; each 32-bit word is stored little-endian, as
    Linux ``proc_tcp_fastopen_key()`` stores them. ValueError names what is wrong."""
    keys = []
    parts = [p.strip() for p in text.split(",")]
    if not 1 <= len(parts) <= 2:
        raise ValueError("expected one key, or a primary and a backup key separated by ','")
    for part in parts:
        words = part.split("-")
        if len(words) != 4:
            raise ValueError(f"key {part!r}: expected four hex words separated by '-'")
        try:
            nums = [int(w, 16) for w in words]
        except ValueError:
            raise ValueError(f"key {part!r}: not hexadecimal") from None
        if any(not 0 <= n <= 0xFFFFFFFF for n in nums):
            raise ValueError(f"key {part!r}: a word is longer than 32 bits")
        keys.append(b"".join(n.to_bytes(4, "little") for n in nums))
    return tuple(keys)


def format_keys(keys: tuple[bytes, ...]) -> str:
    """Keys as ``sysctl net.ipv4.tcp_fastopen_key`` prints them."""
    return ",".join("-".join(f"{int.from_bytes(k[i:i + 4], 'little'):08x}"
                             for i in range(0, 16, 4)) for k in keys)


@dataclass(frozen=True, slots=True)
class FastOpenOption:
    """A Fast Open option as read from a SYN: ``cookie`` empty for a request."""

    cookie: bytes
    exp: bool          # the experimental form (kind 254, magic 0xF989)


def find_option(seg: TcpSegment) -> FastOpenOption | None:
    """The Fast Open option of a SYN or SYN,ACK, as Linux tcp_parse_fastopen_option()
    reads it: None when there is none or its length is not 0 or an even 4 to 16."""
    for kind, data in seg.unknown_options:
        exp = False
        if kind == OPT_EXP and data[:2] == EXP_MAGIC:
            data, exp = data[2:], True
        elif kind != OPT_FASTOPEN:
            continue
        n = len(data)
        if n % 2 or (n and not COOKIE_MIN <= n <= COOKIE_MAX):
            return None
        return FastOpenOption(bytes(data), exp)
    return None


def option(cookie: bytes, exp: bool) -> tuple[int, bytes]:
    """The option as an ``unknown_options`` entry of a segment to send."""
    return (OPT_EXP, EXP_MAGIC + cookie) if exp else (OPT_FASTOPEN, cookie)


@dataclass(slots=True)
class CacheEntry:
    """What a client remembers of one server (Linux struct tcp_fastopen_metrics)."""

    cookie: bytes = b""
    exp: bool = False             # the cookie came in the experimental form
    mss: int = 0
    syn_loss: int = 0
    last_syn_loss: int = 0        # microseconds
    try_exp: int = 0              # 1: ask in the experimental form next time; 2: back to 34


class CookieCache:
    """The client's per-destination cache (Linux keeps it in tcp_metrics)."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}

    def lookup(self, dst: str) -> tuple[bytes, int, bool]:
        """(cookie, mss, exp) for a SYN to ``dst``, as Linux tcp_fastopen_cache_get()
        reads them: the cookie's own form, or the experimental form to ask in when
        the last plain request went unanswered (``try_exp`` 1)."""
        e = self.entries.get(dst)
        if e is None:
            return b"", 0, False
        exp = e.exp if e.cookie else e.try_exp == 1
        return e.cookie, e.mss, exp

    def store(self, dst: str, *, now: int, mss: int, cookie: FastOpenOption | None,
              syn_lost: bool, try_exp: int) -> None:
        """Linux tcp_fastopen_cache_set(): remember what a SYN,ACK said."""
        e = self.entries.setdefault(dst, CacheEntry())
        if mss:
            e.mss = mss
        if cookie is not None and cookie.cookie:
            e.cookie, e.exp = cookie.cookie, cookie.exp
        elif try_exp > e.try_exp and not e.cookie:
            e.try_exp = try_exp
        if syn_lost:
            e.syn_loss += 1
            e.last_syn_loss = now
        else:
            e.syn_loss = 0

    def flush(self) -> None:
        """``ip tcp_metrics flush``."""
        self.entries.clear()


@dataclass(slots=True)
class FastOpenState:
    """One connection's Fast Open state; ``Connection.tfo`` is None without any.

    Client side: ``cookie`` is what the SYN carries (None: no option; b"": a
    request), ``exp`` its form, ``room`` what data it may carry, ``data_len`` the
    bytes it did carry,
    ``cache``/``dst`` where the SYN,ACK's cookie goes. Server side: ``child`` for a
    connection a Fast Open SYN created (Linux tcp_rsk(req)->tfo_listener).
    """

    cookie: bytes | None = None
    exp: bool = False
    room: int = 0                     # bytes the SYN may carry (0: a cookie request)
    data_len: int = 0
    syn_data_acked: bool = False      # Linux tp->syn_data_acked (TCPI_OPT_SYN_DATA)
    child: bool = False
    client_fail: int = TFO_STATUS_UNSPEC
    cache: CookieCache | None = None
    dst: str = ""
    defer: bool = False               # TCP_FASTOPEN_CONNECT: SYN waits for the first write
    write_pending: bool = False       # a blocking writer waits for the handshake
