"""A listening socket's two queues, as Linux keeps them.

Theory of operation
-------------------
A SYN for a listening port creates a child connection in SYN_RECEIVED that
waits in the **SYN queue** (half-open connections) until the final ACK of the
handshake arrives. Then it moves to the **accept queue**, where it waits,
ESTABLISHED, for ``accept()``.

Bounds, as in Linux's ``tcp_conn_request()`` with SYN cookies off:

* the accept queue holds ``min(backlog, net.core.somaxconn)`` connections (Linux
  lets it reach one more: ``sk_acceptq_is_full()`` tests ``>``, not ``>=``);
* a SYN is dropped when the accept queue is full, when the SYN queue holds as
  many requests as the accept queue may, or when it is three quarters of
  ``net.ipv4.tcp_max_syn_backlog`` full;
* when the final ACK finds the accept queue full, the ACK is dropped (the
  client believes it is connected; our SYN-ACK retransmissions make it try
  again), or, with ``net.ipv4.tcp_abort_on_overflow = 1``, answered by RST.
"""

from __future__ import annotations

from collections import deque

from synack.config import Sysctl
from synack.tcp.connection import Connection


class Listener:
    """SYN queue and accept queue of one listening socket."""

    def __init__(self, local: tuple[str, int], backlog: int, cfg: Sysctl) -> None:
        self.local = local
        self.cfg = cfg
        self.max_backlog = max(min(backlog, cfg.int("net.core.somaxconn")), 0)
        self.syn_queue: dict[tuple[str, int], Connection] = {}
        self.accept_queue: deque[Connection] = deque()
        # Linux's counters of the same names (nstat TcpExtListenOverflows, ...).
        self.listen_overflows = 0
        self.listen_drops = 0
        self.syn_drops = 0

    def accept_queue_full(self) -> bool:
        """Linux sk_acceptq_is_full(): more than the backlog already waiting."""
        return len(self.accept_queue) > self.max_backlog

    def syn_verdict(self) -> str | None:
        """Why a new SYN must be dropped now, or None to accept it."""
        qlen = len(self.syn_queue)
        # Current kernels' inet_csk_reqsk_queue_is_full() tests ">" like the accept
        # queue (older ones tested ">="): the SYN queue too holds one more than the backlog.
        if qlen > self.max_backlog:
            return "SYN queue full (backlog)"
        if self.accept_queue_full():
            self.listen_overflows += 1
            return "accept queue full"
        max_syn = self.cfg.int("net.ipv4.tcp_max_syn_backlog")
        if max_syn - qlen < (max_syn >> 2):
            return "SYN queue full (tcp_max_syn_backlog)"
        return None

    def drop_syn(self) -> None:
        """Count a dropped SYN."""
        self.syn_drops += 1
        self.listen_drops += 1
