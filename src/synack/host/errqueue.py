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

SO_EE_ORIGIN_TIMESTAMPING = 4
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
IP_RECVERR = 11
SOL_IP = 0
ENOMSG = 42
# SO_TIMESTAMPING (include/uapi/linux/net_tstamp.h) and the report types (SCM_TSTAMP_*).
SOF_TX_SOFTWARE, SOF_SOFTWARE, SOF_OPT_ID = 1 << 1, 1 << 4, 1 << 7
SOF_TX_SCHED, SOF_TX_ACK, SOF_OPT_TSONLY = 1 << 8, 1 << 9, 1 << 11
SOF_MASK = (1 << 18) - 1                   # every flag Linux 6.x knows
SOF_TX_ANY = SOF_TX_SOFTWARE | SOF_TX_SCHED | SOF_TX_ACK
SCM_TSTAMP_SND, SCM_TSTAMP_SCHED, SCM_TSTAMP_ACK = 0, 1, 2


@dataclass(slots=True)
class ExtErr:
    """One ``struct sock_extended_err`` on the queue."""

    errno: int = 0
    origin: int = SO_EE_ORIGIN_ZEROCOPY
    type: int = 0
    code: int = SO_EE_CODE_ZEROCOPY_COPIED
    info: int = 0
    data: int = 0
    stamp_us: int | None = None   # a timestamp report's software time (SCM_TIMESTAMPING)
    payload: int = 0              # bytes of the packet that come with it (MSG_TRUNC)

    def scm_timestamping(self) -> bytes:
        """``struct scm_timestamping``: the software time, then two zero timespecs."""
        us = self.stamp_us or 0
        return struct.pack("=qqqqqq", us // 1_000_000, us % 1_000_000 * 1000, 0, 0, 0, 0)

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
    ts_flags: int = 0             # SO_TIMESTAMPING
    ts_key: int = 0               # sk_tskey: SND.UNA when SOF_TIMESTAMPING_OPT_ID was set
    ts_marks: deque[list[int]] = field(default_factory=deque)   # [last byte's seq, sent]


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


# ---------------------------------------------------------------- SO_TIMESTAMPING
def set_timestamping(sock: Sock, flags: int) -> None:
    """SO_TIMESTAMPING (Linux sock_set_timestamping()): EINVAL for an unknown flag, or
    OPT_ID on a TCP socket that is closed or listening; OPT_ID newly set numbers bytes
    from SND.UNA (sk_tskey)."""
    if flags & ~SOF_MASK or flags < 0:
        raise OSError(22, "Invalid argument")
    q = of(sock)
    if flags & SOF_OPT_ID and not q.ts_flags & SOF_OPT_ID:
        conn = sock.conn
        if conn is None or conn.state in (State.CLOSED, State.LISTEN):
            raise OSError(22, "Invalid argument")
        q.ts_key = conn.snd.snd_una
    q.ts_flags = flags


def on_send_ts(sock: Sock, end: int) -> bool:
    """A write with TX timestamps asked for ended at ``end``: its last byte is marked
    (Linux tcp_tx_timestamp() on the tail skb); a mark not sent yet moves to it, as the
    skb it sits in grew. True when the socket now waits for reports."""
    q = sock.errq
    if q is None or not q.ts_flags & SOF_TX_ANY:
        return False
    last = sq.add(end, -1)
    conn = sock.conn
    if q.ts_marks and not q.ts_marks[-1][1] and conn is not None \
            and sq.ge(q.ts_marks[-1][0], conn.snd.snd_nxt):
        q.ts_marks[-1][0] = last
    else:
        q.ts_marks.append([last, 0])
    return True


def tx_events(sock: Sock, now: int) -> bool:
    """Reports due for marked bytes now (Linux __skb_tstamp_tx()): SCHED and SND once
    the byte is first sent, ACK once it is acknowledged (tcp_ack_tstamp()). False once
    no mark is left."""
    q, conn = sock.errq, sock.conn
    if q is None or conn is None:
        return False
    if conn.state is State.CLOSED:
        q.ts_marks.clear()                   # the skbs are freed without a report
        return False
    snd = conn.snd
    for mark in q.ts_marks:
        if mark[1]:
            continue
        if not sq.gt(snd.snd_max, mark[0]):
            break
        mark[1] = 1
        if q.ts_flags & SOF_TX_SCHED:
            _report(q, SCM_TSTAMP_SCHED, mark[0], now, conn.mss)
        if q.ts_flags & SOF_TX_SOFTWARE:
            _report(q, SCM_TSTAMP_SND, mark[0], now, conn.mss)
    while q.ts_marks and sq.gt(snd.snd_una, q.ts_marks[0][0]):
        key = q.ts_marks.popleft()[0]
        if q.ts_flags & SOF_TX_ACK:
            _report(q, SCM_TSTAMP_ACK, key, now, conn.mss)
    return bool(q.ts_marks)


def _report(q: ErrQueue, kind: int, seq: int, now: int, size: int) -> None:
    key = sq.diff(seq, q.ts_key) & 0xFFFFFFFF if q.ts_flags & SOF_OPT_ID else 0
    q.queue.append(ExtErr(errno=ENOMSG, origin=SO_EE_ORIGIN_TIMESTAMPING, code=0, info=kind,
                          data=key, stamp_us=now if q.ts_flags & SOF_SOFTWARE else None,
                          payload=0 if q.ts_flags & SOF_OPT_TSONLY else size))
    q.wakes += 1
