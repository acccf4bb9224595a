"""The records a connection shares with its owner: per-socket options (copy-on-write),
congestion trace points and state changes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from synack.tcp.state import State
from synack.wire._records import positional_constructor


@dataclass(slots=True)
class SockOpts:
    """Per-socket options, named after their Linux constants (None: use the sysctl).

    Copy-on-write: one record is shared by sockets with the same options (every new
    socket starts with :data:`DEFAULT_OPTS`; a listener's children share its record),
    so ``setsockopt`` sets a :meth:`copy` on the socket and its connection and never
    edits a record in place.
    """

    keepalive: bool = False          # SO_KEEPALIVE
    keepidle: int | None = None      # TCP_KEEPIDLE, seconds
    keepintvl: int | None = None     # TCP_KEEPINTVL, seconds
    keepcnt: int | None = None       # TCP_KEEPCNT
    linger: int | None = None        # SO_LINGER seconds when on, None when off
    nodelay: bool = False            # TCP_NODELAY
    maxseg: int | None = None        # TCP_MAXSEG
    rcvbuf: int | None = None        # SO_RCVBUF as stored (Linux doubles the value set)
    sndbuf: int | None = None        # SO_SNDBUF as stored
    cork: bool = False               # TCP_CORK
    congestion: str | None = None    # TCP_CONGESTION
    oobinline: bool = False          # SO_OOBINLINE
    syncnt: int | None = None        # TCP_SYNCNT
    fastopen_qlen: int | None = None  # TCP_FASTOPEN: a listener's Fast Open queue bound
    fastopen_key: tuple[bytes, ...] | None = None  # TCP_FASTOPEN_KEY (primary, backup)
    fastopen_connect: bool = False   # TCP_FASTOPEN_CONNECT
    fastopen_no_cookie: bool = False  # TCP_FASTOPEN_NO_COOKIE
    zerocopy: bool = False           # SO_ZEROCOPY
    mark: int = 0                    # SO_MARK (kept, not used: synack does no routing)
    inq: bool = False                # TCP_INQ: recvmsg() adds a TCP_CM_INQ cmsg
    notsent_lowat: int | None = None  # TCP_NOTSENT_LOWAT, bytes
    user_timeout: int = 0            # TCP_USER_TIMEOUT, ms (0: off)
    window_clamp: int = 0            # TCP_WINDOW_CLAMP, bytes (0: none)
    rcvlowat: int = 1                # SO_RCVLOWAT, bytes
    tos: int = 0                     # IP_TOS (the ECN bits are the stack's)
    defer_accept: int = 0            # TCP_DEFER_ACCEPT, in SYN,ACK retransmissions
    freebind: bool = False           # IP_FREEBIND

    def copy(self) -> SockOpts:
        """A record of one's own, to change."""
        return replace(self)


DEFAULT_OPTS = SockOpts()   # shared: never edited (see SockOpts)


@dataclass(frozen=True, slots=True)
class TracePoint:
    """Congestion state after one ACK or timeout, for time-sequence and cwnd plots."""

    now: int
    event: str            # "ack" or "rto"
    cwnd: int             # segments
    ssthresh: int         # segments
    srtt: int | None      # microseconds
    rto: int              # microseconds, backed off
    snd_una: int
    ca_state: str


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition of one connection, for logs, ladders and timelines."""

    now: int
    old: State
    new: State
    why: str


#: ``make_change(now, old, new, why)``: a :class:`StateChange` without the frozen
#: dataclass's keyword ``__init__`` (four ``object.__setattr__`` calls): one per state
#: change of every connection whose changes are recorded (see wire/_records.py).
make_change = positional_constructor(StateChange)
