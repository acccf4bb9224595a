"""The host's small records: what a descriptor refers to, the device's offloads, an
``ss`` row, and the address types every host module shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synack.host.errqueue import ErrQueue
from synack.tcp.connection import DEFAULT_OPTS, Connection, SockOpts
from synack.tcp.listener import Listener
from synack.tcp.rare import Pooled, Rare, pooled
from synack.tcp.state import State

Addr = tuple[str, int]
Key = tuple[str, int, str, int]  # local ip, local port, remote ip, remote port
#: An address as the socket API takes and gives it: (host, port) for AF_INET,
#: (host, port, flowinfo, scope_id) for AF_INET6 (the last two optional on the way in).
#: Typed loosely, as the stdlib's socket stubs type addresses.
SockAddr = tuple[Any, ...]

SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2


_ADDRS: dict[Addr, Addr] = {}


def shared_addr(addr: Addr) -> Addr:
    """One tuple object for an (ip, port) that many connections hold alike (a server's
    own address in each of its children, the server many client connections go to):
    56 bytes less for each. Bounded: once the table holds 4096, new ones are returned
    as they are."""
    got = _ADDRS.get(addr)
    if got is not None:
        return got
    if len(_ADDRS) < 4096:
        _ADDRS[addr] = addr
    return addr


_new = object.__new__

ORPHAN = -2
"""``Connection.fd`` of a connection the application closed that is still closing."""


class Sock:
    """What a file descriptor refers to.

    Its small fields are off the slots (synack/tcp/rare.py): the listener, the error
    and error-queue state and IPV6_V6ONLY are :class:`Rare` (at their defaults in most
    sockets), SO_REUSEADDR, the pending connect() and the family :class:`Pooled` (one
    tuple for every socket with the same three).
    """

    __slots__ = ("conn", "fd", "local", "opts", "pool", "rare", "remote")

    listener = Rare[Listener | None](None)
    error_reported = Rare[bool](False)
    v6only = Rare[bool](False)          # IPV6_V6ONLY of an AF_INET6 socket
    errq = Rare[ErrQueue | None](None)  # MSG_ERRQUEUE and MSG_ZEROCOPY state, once used
    reuseaddr = Pooled[bool](0)
    connecting = Pooled[bool](1)        # connect() started; its outcome not yet reported
    family = Pooled[int](2)             # socket.AF_INET (2), or AF_INET6 (10)

    def __init__(self, fd: int, opts: SockOpts = DEFAULT_OPTS, local: Addr | None = None,
                 remote: Addr | None = None, conn: Connection | None = None, *,
                 reuseaddr: bool = False, connecting: bool = False, family: int = 2) -> None:
        self.fd = fd
        self.opts = opts                # copy-on-write: setsockopt() replaces the record
        self.local = local
        self.remote = remote
        self.conn = conn
        self.rare: dict[str, object] | None = None
        self.pool: tuple[object, ...] = pooled((reuseaddr, connecting, family))

    @classmethod
    def child(cls, fd: int, conn: Connection, pool: tuple[object, ...]) -> Sock:
        """The socket accept() makes for ``conn`` (its addresses and options are the
        connection's), with ``pool`` (:func:`pooled`) as it is: :meth:`__init__`
        without its keywords and pooled() call, once per accepted connection."""
        sock = _new(cls)
        sock.fd = fd
        sock.opts = conn.opts
        sock.local = conn.local
        sock.remote = conn.remote
        sock.conn = conn
        sock.rare = None
        sock.pool = pool
        return sock

    def __repr__(self) -> str:
        return (f"Sock(fd={self.fd}, local={self.local}, remote={self.remote}, "
                f"conn={self.conn!r}, family={self.family})")


@dataclass(frozen=True, slots=True)
class Offload:
    """What the device under the stack does for it (virtio-net offloads)."""

    tx_csum: bool = False   # the device fills in TCP checksums: we put the pseudo-header sum
    tso_max: int = 0        # largest IPv4 packet the device cuts into MSS segments (0: no TSO)


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One row of ``ss -tan``."""

    state: State
    recv_q: int
    send_q: int
    local: Addr
    peer: Addr
