"""A bulk transfer between two synack hosts in the simulator.

The sender writes ``nbytes`` of a seeded pseudo-random stream as fast as its
send buffer allows and then closes; the receiver reads everything and checks
it against the same stream. Used by tests and benchmarks of whole conversations.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synack.config import Sysctl
from synack.demo.driver import AppHost
from synack.sim import LinkParams, Network
from synack.stack import Stack
from synack.tcp.state import State

SENDER, RECEIVER = "192.0.2.1", "192.0.2.2"
SENDER6, RECEIVER6 = "2001:db8::1", "2001:db8::2"   # transfer(ipv6=True)


@dataclass
class TransferResult:
    """What a transfer did."""

    nbytes: int
    received: int
    intact: bool            # same bytes, same order, nothing extra
    finished: bool          # both sides saw the close through
    duration_us: int
    retransmits: int
    packets: int
    sha256: str

    @property
    def goodput_bps(self) -> float:
        """Application bytes per second of virtual time."""
        return self.received * 8 * 1e6 / max(self.duration_us, 1)

    final_cwnd: int = 0
    rto_count: int = 0
    wall_s: float = 0.0
    trace: list[Any] = field(default_factory=list)   # the sender's TracePoints
    never_opened: str = ""  # why the handshake failed ("" if it completed)
    started_us: int = 0     # when the client called connect() (its SYN), virtual time
    ce_marked: int | None = None   # packets the link's queue marked CE (None: no marking)

    def report(self) -> str:
        """The lines `synack sim` prints."""
        if self.never_opened:
            return "\n".join([
                f"the connection never opened: {self.never_opened}",
                f"packets       {self.packets} on the wire; simulated in {self.wall_s:.2f} s",
            ])
        verdict = "intact" if self.intact else "CORRUPT OR INCOMPLETE"
        return "\n".join([
            f"sent          {self.nbytes} bytes",
            f"received      {self.received} bytes, {verdict} (sha256 {self.sha256[:16]}...)",
            f"virtual time  {self.duration_us / 1e6:.3f} s",
            f"goodput       {self.goodput_bps / 1e6:.2f} Mbit/s",
            f"retransmitted {self.retransmits} segments, {self.rto_count} RTO timeouts",
            f"final cwnd    {self.final_cwnd} segments",
            *([] if self.ce_marked is None else
              [f"ECN           {self.ce_marked} packets marked CE by the bottleneck queue"]),
            f"packets       {self.packets} on the wire; simulated in {self.wall_s:.2f} s",
        ])


def _stream(seed: int, n: int) -> bytes:
    return random.Random(f"payload:{seed}").randbytes(n)


def transfer(nbytes: int, *, seed: int = 1, link: LinkParams | None = None,
             back: LinkParams | None = None, sender_cfg: Sysctl | None = None,
             receiver_cfg: Sysctl | None = None, read_chunk: int = 1 << 20,
             until_us: int = 3600 * 1_000_000, pcap: str | None = None,
             setup: Callable[[Network], None] | None = None, rcvbuf: int | None = None,
             stall: tuple[int, int] | None = None,
             progress: Callable[[int], object] | None = None,
             ipv6: bool = False) -> TransferResult:
    """Send ``nbytes`` from SENDER to RECEIVER over a link with the given impairments.

    ``rcvbuf`` sets the receiver's SO_RCVBUF (on the listener, so the SYN already
    advertises it); during ``stall`` = (start, end) microseconds the receiving
    application reads nothing, so its window closes and the sender must probe.
    ``progress``, if given, is told how many bytes the receiver has read so far.
    ``ipv6``: the hosts are SENDER6 and RECEIVER6, the connection AF_INET6.
    """
    net = Network(seed)
    tx = Stack(SENDER, seed=seed, cfg=sender_cfg, name="sender",
               addr6=SENDER6 if ipv6 else None)
    rx = Stack(RECEIVER, seed=seed + 1, cfg=receiver_cfg, name="receiver",
               addr6=RECEIVER6 if ipv6 else None)
    txh, rxh = AppHost(tx), AppHost(rx)
    src, dst = (SENDER6, RECEIVER6) if ipv6 else (SENDER, RECEIVER)
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    net.add_host(src, txh)
    net.add_host(dst, rxh)
    net.add_link(src, dst, link or LinkParams(), b_to_a=back)
    data = _stream(seed, nbytes)
    view = memoryview(data)
    lfd = rx.socket(family)
    if rcvbuf is not None:
        rx.setsockopt(lfd, socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    rx.bind(lfd, (dst, 5001))
    rx.listen(lfd)
    got = bytearray()
    st: dict[str, int] = {"off": 0}

    def receiver(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = rx.accept(lfd)
            except BlockingIOError:
                return
        if "closed" in st:
            return
        if stall is not None and stall[0] <= now < stall[1]:
            return
        while True:
            try:
                chunk = rx.recv(st["fd"], read_chunk, now=now)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                st["closed"] = now
                rx.close(st["fd"], now=now)
                return
            got.extend(chunk)
            if progress is not None:
                progress(len(got))

    cfd = tx.socket(family)
    conn: list = []

    def sender(now: int) -> None:
        # A careful application: after the last byte, shutdown(SHUT_WR) and close only
        # when the receiver's FIN arrives. (send-then-close() would make the socket an
        # orphan, which Linux -- and synack -- give up on after tcp_orphan_retries.)
        if "tx_closed" in st or "failed" in st:
            return
        state = tx.state(cfd)
        if state in (State.SYN_SENT, State.SYN_RECEIVED):
            return
        if not conn and "connecting" in st and state is State.CLOSED:
            # The handshake gave up (SYN retries ran out, or a RST): nothing will
            # ever move, so the run ends here instead of at its time limit.
            st["failed"] = now
            err = tx.getsockopt(cfd, socket.SOL_SOCKET, socket.SO_ERROR)
            st["errno"] = err if isinstance(err, int) else 0
            return
        if not conn:
            conn.append(tx.connection(cfd))
            conn[0].trace = []
        if "done" not in st:
            while st["off"] < nbytes:
                try:
                    st["off"] += tx.send(cfd, view[st["off"]:], now=now)
                except BlockingIOError:
                    return
                except OSError:
                    break
            st["done"] = now
            try:
                tx.shutdown(cfd, socket.SHUT_WR, now=now)
            except OSError:
                pass
        try:
            eof = tx.recv(cfd, 4096, now=now) == b""
        except BlockingIOError:
            return
        except OSError:
            eof = True
        if eof:
            st["tx_closed"] = now
            tx.close(cfd, now=now)

    txh.apps.append(sender)
    rxh.apps.append(receiver)
    if setup is not None:
        setup(net)
    if stall is not None:
        net.call_at(stall[1], receiver)          # the application wakes up again
    def connect(now: int) -> None:
        st["connecting"] = now
        tx.connect_ex(cfd, (dst, 5001), now=now)

    net.call_at(0, connect)
    t0 = time.perf_counter()
    net.run(until=until_us, stop=lambda: "failed" in st
            or ("closed" in st and "tx_closed" in st and not tx.conns))
    wall = time.perf_counter() - t0
    never = _never_opened(net, st["failed"], st.get("errno", 0)) if "failed" in st else ""
    if pcap:
        net.write_pcap(pcap)
    retrans = conn[0].total_retrans if conn else 0
    intact = bytes(got) == data
    return TransferResult(
        nbytes=nbytes, received=len(got), intact=intact,
        finished="closed" in st and "tx_closed" in st and not tx.conns,
        duration_us=st.get("closed", net.now), retransmits=retrans,
        packets=len(net.records), sha256=hashlib.sha256(got).hexdigest(),
        final_cwnd=getattr(conn[0], "cwnd_segments", 0) if conn else 0,
        rto_count=getattr(conn[0], "rto_count", 0) if conn else 0, wall_s=wall,
        trace=conn[0].trace if conn else [], never_opened=never,
        started_us=st.get("connecting", 0),
        ce_marked=None if link is None or link.ecn_mark_bytes is None
        else net.link(src, dst).stats.ce_marked)


def _never_opened(net: Network, failed_us: int, err: int) -> str:
    """``SYN retried 6 times, gave up after 127.0 s (Connection timed out)``."""
    syns = 0
    for rec in net.records:
        if rec.src in (SENDER, SENDER6) and len(rec.data) >= 20:
            ihl = 40 if rec.data[0] >> 4 == 6 else (rec.data[0] & 0x0F) * 4
            if len(rec.data) > ihl + 13 and rec.data[ihl + 13] & 0x12 == 0x02:  # SYN, no ACK
                syns += 1
    why = os.strerror(err) if err else "closed"
    retried = f"SYN retried {syns - 1} time{'s' if syns != 2 else ''}" if syns > 1 \
        else "SYN sent once"
    return f"{retried}, gave up after {failed_us / 1e6:.1f} s ({why})"
