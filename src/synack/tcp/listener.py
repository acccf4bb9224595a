"""A listening socket's two queues, as Linux keeps them.

Theory of operation
-------------------
A SYN for a listening port creates a child connection in SYN_RECEIVED that
waits in the **SYN queue** (half-open connections) until the final ACK of the
handshake arrives. Then it moves to the **accept queue**, where it waits,
ESTABLISHED, for ``accept()``.

Bounds, as in Linux's ``tcp_conn_request()``:

* the accept queue holds ``min(backlog, net.core.somaxconn)`` connections (Linux
  lets it reach one more: ``sk_acceptq_is_full()`` tests ``>``, not ``>=``);
* a SYN is dropped when the accept queue is full;
* when the SYN queue holds as many requests as the accept queue may, a SYN is
  answered with a SYN cookie (:mod:`synack.tcp.syncookies`) if
  ``net.ipv4.tcp_syncookies`` is 1, and dropped if it is 0; with 2 every SYN
  gets a cookie;
* without cookies, a SYN is also dropped when the SYN queue is three quarters
  of ``net.ipv4.tcp_max_syn_backlog`` full;
* when the final ACK finds the accept queue full, the ACK is dropped (the
  client believes it is connected; our SYN-ACK retransmissions make it try
  again), or, with ``net.ipv4.tcp_abort_on_overflow = 1``, answered by RST.
"""

from __future__ import annotations

from collections import deque

from synack.config import Sysctl
from synack.tcp.connection import Connection

COOKIE = "cookie"   # syn_verdict(): answer with a SYN cookie, keep no state


class Listener:
    """SYN queue and accept queue of one listening socket."""

    def __init__(self, local: tuple[str, int], backlog: int, cfg: Sysctl) -> None:
        self.local = local
        self.cfg = cfg
        self.max_backlog = max(min(backlog, cfg.int("net.core.somaxconn")), 0)
        self.syn_queue: dict[tuple[str, int], Connection] = {}
        self.young = 0          # SYN queue entries whose SYN,ACK has not timed out yet
        self.accept_queue: deque[Connection] = deque()
        # Linux's counters of the same names (nstat TcpExtListenOverflows, ...).
        self.listen_overflows = 0
        self.listen_drops = 0
        self.syn_drops = 0
        self.last_cookie_sent: int | None = None   # Linux rx_opt.ts_recent_stamp of the
                                                   # listener (tcp_synq_overflow())
        self.fd = -1                               # the listening socket's descriptor
        # TCP Fast Open: the queue bound listen() gave it (net.ipv4.tcp_fastopen 0x400;
        # TCP_FASTOPEN on the socket overrides it), and the children not yet past
        # their handshake's last ACK (Linux fastopenq.max_qlen, fastopenq.qlen).
        self.fastopen_qlen = 0
        self.fastopen_children: set[Connection] = set()
        # A wildcard listener's own address for each local IP its SYNs come to (the
        # children's ``local``: one tuple for all of them; host/listen.py fills it).
        self.addrs: dict[str, tuple[str, int]] = {}

    def accept_queue_full(self) -> bool:
        """Linux sk_acceptq_is_full(): more than the backlog already waiting."""
        return len(self.accept_queue) > self.max_backlog

    def syn_verdict(self) -> str | None:
        """None to queue a new SYN, :data:`COOKIE` to answer it statelessly, else why
        it must be dropped (Linux ``tcp_conn_request()``)."""
        qlen = len(self.syn_queue)
        cookies = self.cfg.syncookies
        want_cookie = False
        # Current kernels' inet_csk_reqsk_queue_is_full() tests ">" like the accept
        # queue (older ones tested ">="): the SYN queue too holds one more than the backlog.
        if cookies == 2 or qlen > self.max_backlog:
            if not cookies:
                return "SYN queue full (backlog)"
            want_cookie = True
        if len(self.accept_queue) > self.max_backlog:   # accept_queue_full(), inline
            self.listen_overflows += 1
            return "accept queue full"
        if want_cookie:
            return COOKIE
        max_syn = self.cfg.max_syn_backlog
        if not cookies and max_syn - qlen < (max_syn >> 2):
            return "SYN queue full (tcp_max_syn_backlog)"
        return None

    def synack_retries(self) -> int:
        """SYN,ACK retransmissions an entry of the SYN queue may have now (Linux
        reqsk_timer_handler()): all of tcp_synack_retries while the queue is under half
        full; beyond that, fewer (down to 2) the more old entries crowd the young ones,
        so that half of the queue stays for new connections."""
        retries = self.cfg.int("net.ipv4.tcp_synack_retries")
        qlen = len(self.syn_queue)
        if qlen << 1 > max(8, self.max_backlog):
            young = self.young << 1
            while retries > 2 and qlen >= young:
                retries -= 1
                young <<= 1
        return retries

    def drop_syn(self) -> None:
        """Count a dropped SYN."""
        self.syn_drops += 1
        self.listen_drops += 1
