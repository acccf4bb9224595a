"""A socket's error queue and MSG_ZEROCOPY completions, as Linux reports them.

``send(..., MSG_ZEROCOPY)`` on a socket with ``SO_ZEROCOPY`` set numbers each call
(``sk_zckey``, from 0); once every byte of the call has been acknowledged (Linux:
the last skb holding its pages is freed) a notification goes on the socket's error
queue, read with ``recvmsg(MSG_ERRQUEUE)`` as a ``sock_extended_err`` with origin
``SO_EE_ORIGIN_ZEROCOPY`` and the range of calls it covers in ``ee_info`` ..
``ee_data``. synack copies the bytes, so every notification says
``SO_EE_CODE_ZEROCOPY_COPIED`` (Linux says the same whenever the device copied).

Coalescing mirrors Linux twice over:

- ``msg_zerocopy_realloc()``: a call whose bytes join a previous call's still
  unsent tail shares that call's notification (the range grows by one);
- ``__msg_zerocopy_callback()``: a completion whose range starts right after the
  last notification still queued extends it (``skb_zerocopy_notify_extend()``).

Completions are found lazily (:func:`complete`), from ``snd_una``, whenever the
queue is looked at; the order of events is the same as if found at each ACK.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.state import State

if TYPE_CHECKING:
    from synack.host.records import Sock

SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
IP_RECVERR = 11
SOL_IP = 0


@dataclass(slots=True)
class ExtErr:
    """One ``struct sock_extended_err`` on the queue."""

    errno: int = 0
    origin: int = SO_EE_ORIGIN_ZEROCOPY
    type: int = 0
    code: int = SO_EE_CODE_ZEROCOPY_COPIED
    info: int = 0
    data: int = 0

    def pack(self) -> bytes:
        """The cmsg data of ``IP_RECVERR``: the struct and an empty offender address."""
        return struct.pack("=IBBBBII", self.errno, self.origin, self.type, self.code, 0,
                           self.info, self.data) + bytes(16)


@dataclass(slots=True)
class _Call:
    lo: int           # the first call's key
    n: int            # calls covered
    end: int          # sequence number just past the last byte of the last call


@dataclass(slots=True)
class ErrQueue:
    """A socket's error queue and its zerocopy calls not yet completed."""

    zckey: int = 0
    pending: deque[_Call] = field(default_factory=deque)
    queue: deque[ExtErr] = field(default_factory=deque)
    wakes: int = 0    # notifications made: each one is a wakeup (sk_error_report)


def of(sock: Sock) -> ErrQueue:
    """The socket's queue (made on first use)."""
    q = sock.errq
    if q is None:
        q = sock.errq = ErrQueue()
    return q


def on_send(sock: Sock, start: int, end: int) -> None:
    """A MSG_ZEROCOPY call queued bytes ``start``..``end`` (sequence numbers)."""
    q = of(sock)
    conn = sock.conn
    last = q.pending[-1] if q.pending else None
    if (last is not None and last.lo + last.n == q.zckey and conn is not None
            and sq.gt(last.end, conn.snd.snd_nxt) and last.end == start):
        last.n += 1          # msg_zerocopy_realloc(): the tail skb's notification grows
        last.end = end
    else:
        q.pending.append(_Call(q.zckey, 1, end))
    q.zckey += 1


def complete(sock: Sock) -> None:
    """Move the calls whose bytes are all acknowledged (or dropped) to the queue."""
    q = sock.errq
    if q is None or not q.pending:
        return
    conn = sock.conn
    gone = conn is None or conn.state is State.CLOSED
    while q.pending:
        call = q.pending[0]
        if not gone:
            assert conn is not None
            if sq.gt(call.end, conn.snd.snd_una):
                break
        q.pending.popleft()
        q.wakes += 1
        tail = q.queue[-1] if q.queue else None
        if (tail is not None and tail.origin == SO_EE_ORIGIN_ZEROCOPY
                and call.lo == tail.data + 1 and tail.data - tail.info + 1 + call.n < 1 << 32):
            tail.data += call.n      # skb_zerocopy_notify_extend()
        else:
            q.queue.append(ExtErr(info=call.lo, data=call.lo + call.n - 1))


def pending_error(sock: Sock) -> bool:
    """Something is on the error queue (poll's POLLERR)."""
    complete(sock)
    return bool(sock.errq and sock.errq.queue)


def pop(sock: Sock) -> ExtErr | None:
    """The oldest entry, taken off the queue (None when empty: recvmsg says EAGAIN)."""
    complete(sock)
    q = sock.errq
    if q is None or not q.queue:
        return None
    return q.queue.popleft()
