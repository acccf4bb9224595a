"""TIME_WAIT, compactly: what is left of a connection for its last 2*MSL.

A connection in TIME_WAIT has nothing to send and nothing to read; all it must
do is answer a retransmitted FIN with an ACK (the peer lost our last ACK) and
keep the 4-tuple from being reused too early. Linux replaces the full socket by
a small ``inet_timewait_sock``; so does synack, with :class:`TimeWait`.
The rules are Linux's ``tcp_timewait_state_process()``.
"""

from __future__ import annotations

from synack import seq as sq
from synack.wire._addr import aton, aton6, ntoa, ntoa6
from synack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

KEEP, KILL, NEW_SYN = "keep", "kill", "syn"

# One int holds every field (a Python int costs 28 bytes plus 4 per 30 bits; an object
# slot 8 bytes and a pointer to an int of its own), laid out from bit 0:
#   snd_nxt 32 | rcv_nxt 32 | window 16 | local port 16 | remote port 16 |
#   local address 32 | remote address 32 | ts 1 | v6 1 | [IPv6 only: the high 96 bits of
#   the local address, then of the remote address] | expires 64 |
#   last out-of-window ACK 32 (ms after since, plus 1; 0: none) | TS.Recent 32 |
#   TS clock offset 32 | since (the rest, any sign)
# An IPv4 entry keeps its 32-bit addresses and pays nothing for IPv6; an IPv6 entry's
# fields above the v6 bit sit 192 bits higher (_V6_SHIFT).
_RCV, _WIN, _LPORT, _RPORT, _LADDR, _RADDR, _TS, _V6, _HI, _EXP, _OOW, _TSR, _TSO, _SINCE = (
    32, 64, 80, 96, 112, 144, 176, 177, 178, 178, 242, 274, 306, 338)
_V6_SHIFT = 192
_M16, _M32, _M64, _M96 = 0xFFFF, 0xFFFFFFFF, (1 << 64) - 1, (1 << 96) - 1


def _sh(bits: int) -> int:
    """How far the fields above the v6 bit are moved up in this entry."""
    return _V6_SHIFT if bits >> _V6 & 1 else 0


def _addr_bits(local: str, remote: str) -> int:
    if ":" not in local:
        return aton(local) << _LADDR | aton(remote) << _RADDR
    lo = int.from_bytes(aton6(local), "big")
    ro = int.from_bytes(aton6(remote), "big")
    return ((lo & _M32) << _LADDR | (ro & _M32) << _RADDR | 1 << _V6
            | (lo >> 32) << _HI | (ro >> 32) << (_HI + 96))


def _addrs(bits: int) -> tuple[str, str]:
    lo, ro = bits >> _LADDR & _M32, bits >> _RADDR & _M32
    if not bits >> _V6 & 1:
        return ntoa(lo), ntoa(ro)
    lo |= (bits >> _HI & _M96) << 32
    ro |= (bits >> (_HI + 96) & _M96) << 32
    return ntoa6(lo.to_bytes(16, "big")), ntoa6(ro.to_bytes(16, "big"))


class TimeWait:
    """The few fields a TIME_WAIT connection needs, packed into one int.

    About 100 bytes an entry (Linux's ``tcp_timewait_sock`` is about 200): an object
    with one slot and the int. The fields read back as attributes.
    """

    __slots__ = ("_bits",)

    @classmethod
    def from_bits(cls, bits: int) -> TimeWait:
        """The entry packed in ``bits`` (as :attr:`bits` gives it)."""
        tw = cls.__new__(cls)
        tw._bits = bits
        return tw

    @property
    def bits(self) -> int:
        """Every field in one int: what a :class:`TimeWaitTable` stores."""
        return self._bits

    def __init__(self, *, local: tuple[str, int], remote: tuple[str, int], snd_nxt: int,
                 rcv_nxt: int, window: int, expires: int, since: int, ts: bool = False,
                 ts_recent: int = 0, ts_offset: int = 0) -> None:
        if not 0 <= expires <= _M64:
            raise ValueError(f"expires must be 0..2**64-1 microseconds, not {expires}")
        addr = _addr_bits(local[0], remote[0])
        sh = _sh(addr)
        self._bits = (
            (snd_nxt & _M32) | (rcv_nxt & _M32) << _RCV | (window & _M16) << _WIN
            | (local[1] & _M16) << _LPORT | (remote[1] & _M16) << _RPORT
            | addr | bool(ts) << _TS
            | expires << (_EXP + sh) | (ts_recent & _M32) << (_TSR + sh)
            | (ts_offset & _M32) << (_TSO + sh) | since << (_SINCE + sh)
        )

    @property
    def snd_nxt(self) -> int:
        """SND.NXT when the connection entered TIME_WAIT (the seq of our ACKs)."""
        return self._bits & _M32

    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT: just past the peer's FIN."""
        return self._bits >> _RCV & _M32

    @property
    def window(self) -> int:
        """The window field to repeat in our ACKs."""
        return self._bits >> _WIN & _M16

    @property
    def local(self) -> tuple[str, int]:
        """Our address and port."""
        bits = self._bits
        return _addrs(bits)[0], bits >> _LPORT & _M16

    @property
    def remote(self) -> tuple[str, int]:
        """The peer's address and port."""
        bits = self._bits
        return _addrs(bits)[1], bits >> _RPORT & _M16

    @property
    def ts(self) -> bool:
        """The connection used timestamps: tcp_tw_reuse may take it over."""
        return bool(self._bits >> _TS & 1)

    @property
    def since(self) -> int:
        """When the connection entered TIME_WAIT."""
        return self._bits >> (_SINCE + _sh(self._bits))

    @property
    def expires(self) -> int:
        """When 2*MSL runs out (restarted by the peer's segments)."""
        return self._bits >> (_EXP + _sh(self._bits)) & _M64

    @expires.setter
    def expires(self, value: int) -> None:
        if not 0 <= value <= _M64:
            raise ValueError(f"expires must be 0..2**64-1 microseconds, not {value}")
        sh = _sh(self._bits)
        self._bits = (self._bits & ~(_M64 << (_EXP + sh))) | value << (_EXP + sh)

    def __repr__(self) -> str:
        return (f"TimeWait(local={self.local}, remote={self.remote}, snd_nxt={self.snd_nxt}, "
                f"rcv_nxt={self.rcv_nxt}, window={self.window}, expires={self.expires}, "
                f"since={self.since}, ts={self.ts})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWait) and other._bits == self._bits

    __hash__ = None  # type: ignore[assignment]  # mutable (expires), like the dataclass

    @property
    def ts_recent(self) -> int:
        """The peer's last TSval taken (Linux tw_ts_recent), echoed in the ACKs."""
        return self._bits >> (_TSR + _sh(self._bits)) & _M32

    def ack(self, now: int = 0) -> TcpSegment:
        """The ACK of the peer's FIN, as sent again, with the timestamp option when the
        connection used it (Linux tcp_v4_timewait_ack(): our clock, tw_ts_recent)."""
        bits = self._bits
        sh = _sh(bits)
        ts = ((now // 1000 + (bits >> (_TSO + sh) & _M32)) & _M32, bits >> (_TSR + sh) & _M32) \
            if bits >> _TS & 1 else None
        return TcpSegment(src_port=self.local[1], dst_port=self.remote[1], seq=self.snd_nxt,
                          ack=self.rcv_nxt, flags=ACK, window=self.window, timestamps=ts)

    def on_segment(self, seg: TcpSegment, *, now: int, rfc1337: bool, time_wait_us: int,
                   ratelimit_us: int = 0, mib: dict[str, int] | None = None,
                   ) -> tuple[str, TcpSegment | None]:
        """What TIME_WAIT does with ``seg``: (verdict, reply). An ACK in answer to an
        out-of-window segment without data or FIN goes at most once per ``ratelimit_us``
        (Linux tcp_timewait_check_oow_rate_limit(); counted in ``mib``)."""
        flags = seg.flags
        seg_len = len(seg.payload) + (1 if flags & FIN else 0) + (1 if flags & SYN else 0)
        if seg.seq == self.rcv_nxt and (seg_len == 0 or flags & RST):
            # In window, which only a RST or a bare ACK can be.
            if flags & RST:
                # RFC 1337 describes the hazard; Linux kills the TIME_WAIT unless tcp_rfc1337 = 1.
                return (KEEP if rfc1337 else KILL), None
            self.expires = now + time_wait_us
            if seg.timestamps is not None and self.ts:
                # Linux tcp_timewait_state_process(): an in-window ACK's TSval is taken.
                sh = _sh(self._bits)
                self._bits = (self._bits & ~(_M32 << (_TSR + sh))
                              | (seg.timestamps[0] & _M32) << (_TSR + sh))
            return KEEP, None
        if flags & SYN and not flags & (ACK | RST) and sq.gt(seg.seq, self.rcv_nxt):
            return NEW_SYN, None       # a new incarnation may take over the 4-tuple
        if flags & RST:
            return KEEP, None
        # Anything else is out of window (a retransmitted FIN, old data, an old ACK): it
        # is ACKed, and one carrying an ACK restarts 2*MSL (the peer is still there).
        if flags & ACK:
            self.expires = now + time_wait_us
        if seg_len == 0 and ratelimit_us:
            # Linux tcp_oow_rate_limited(): a FIN or data is always answered.
            bits = self._bits
            sh = _sh(bits)
            since = bits >> (_SINCE + sh)
            last = bits >> (_OOW + sh) & _M32
            if last and 0 <= now - (since + (last - 1) * 1000) < ratelimit_us:
                if mib is not None:
                    mib["TcpExtTCPACKSkippedTimeWait"] = mib.get(
                        "TcpExtTCPACKSkippedTimeWait", 0) + 1
                return KEEP, None
            mark = min(max((now - since) // 1000 + 1, 1), _M32)
            self._bits = (bits & ~(_M32 << (_OOW + sh))) | mark << (_OOW + sh)
        return KEEP, self.ack(now)


def bits_expires(bits: int) -> int:
    """``TimeWait.from_bits(bits).expires``, without the object."""
    return bits >> (_EXP + _sh(bits)) & _M64


def bits_since(bits: int) -> int:
    """``TimeWait.from_bits(bits).since``, without the object."""
    return bits >> (_SINCE + _sh(bits))


def bits_key(bits: int) -> tuple[str, int, str, int]:
    """The 4-tuple (local ip, local port, remote ip, remote port) of a packed entry."""
    local, remote = _addrs(bits)
    return local, bits >> _LPORT & _M16, remote, bits >> _RPORT & _M16


class TimeWaitTable(dict):  # type: ignore[type-arg]  # dict[Key, int]; reads give TimeWait
    """A host's TIME_WAIT entries by 4-tuple, each stored as its packed int.

    The :class:`TimeWait` around an int costs 40 bytes more; with 100,000 entries
    that is 4 MB for nothing, so the table keeps the ints and makes the object when
    an entry is read (``get``, ``[key]``, ``values()``, ``items()``). Assigning a
    :class:`TimeWait` stores its bits; :meth:`raw` reads the int back.
    """

    def __getitem__(self, key: tuple[str, int, str, int]) -> TimeWait:
        return TimeWait.from_bits(dict.__getitem__(self, key))

    def get(self, key: tuple[str, int, str, int],  # type: ignore[override]
            default: TimeWait | None = None) -> TimeWait | None:
        bits = dict.get(self, key)
        return default if bits is None else TimeWait.from_bits(bits)

    def raw(self, key: tuple[str, int, str, int]) -> int | None:
        """The packed entry of ``key`` (or None)."""
        return dict.get(self, key)

    def __setitem__(self, key: tuple[str, int, str, int], tw: TimeWait | int) -> None:
        dict.__setitem__(self, key, tw.bits if isinstance(tw, TimeWait) else tw)

    def values(self) -> list[TimeWait]:  # type: ignore[override]
        return [TimeWait.from_bits(b) for b in dict.values(self) if b is not None]

    def items(self) -> list[tuple[tuple[str, int, str, int], TimeWait]]:  # type: ignore[override]
        return [(k, TimeWait.from_bits(b)) for k, b in dict.items(self) if b is not None]
