"""The host's side of TCP Fast Open (RFC 7413): keys, the listener's verdict, the
client's first SYN.

:func:`try_fastopen` is Linux ``tcp_try_fastopen()`` for a SYN that reached a
listener: whether Fast Open applies (``net.ipv4.tcp_fastopen`` has 0x2 and the
listener has a Fast Open queue, from ``TCP_FASTOPEN`` or, with 0x400, from
``listen()``), whether the SYN's cookie is good (the listener's
``TCP_FASTOPEN_KEY`` or the host's ``net.ipv4.tcp_fastopen_key``, primary or
backup), and which cookie the SYN,ACK returns. :func:`start_client` prepares a
connection's first SYN: the cached cookie and data, or a cookie request.
Counters are Linux's (``nstat`` TcpExtTCPFastOpen*).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synack.tcp import fastopen as fo
from synack.tcp.connection import Connection
from synack.tcp.listener import Listener
from synack.tcp.state import State
from synack.wire.tcp import TcpSegment

if TYPE_CHECKING:
    from synack.host.records import Sock
    from synack.stack import Stack

_SYN_RECEIVED = State.SYN_RECEIVED


def host_keys(stack: Stack) -> tuple[bytes, ...]:
    """The host's keys: ``net.ipv4.tcp_fastopen_key``, drawn from the host's random
    source on first use when unset (Linux tcp_fastopen_init_key_once())."""
    text = str(stack.cfg["net.ipv4.tcp_fastopen_key"])
    if not text:
        key = stack.rng.getrandbits(128).to_bytes(16, "little")
        text = fo.format_keys((key,))
        stack.cfg.set("net.ipv4.tcp_fastopen_key", text)
    return fo.parse_keys(text)


def listener_keys(stack: Stack, owner: Sock) -> tuple[bytes, ...]:
    """A listener's keys: its own (TCP_FASTOPEN_KEY) or the host's."""
    return owner.opts.fastopen_key or host_keys(stack)


def _queue_ok(stack: Stack, lst: Listener, owner: Sock) -> bool:
    """Linux tcp_fastopen_queue_check(): a Fast Open queue, not full."""
    max_qlen = owner.opts.fastopen_qlen
    if max_qlen is None:
        max_qlen = lst.fastopen_qlen
    if not max_qlen:
        return False
    pending = lst.fastopen_children
    for child in list(pending):
        if child.state is not _SYN_RECEIVED:
            pending.discard(child)
    if len(pending) >= max_qlen:
        stack.cfg.mib["TcpExtTCPFastOpenListenOverflow"] += 1
        return False
    return True


def try_fastopen(stack: Stack, lst: Listener, owner: Sock, seg: TcpSegment, client: str,
                 server: str) -> tuple[bool, fo.FastOpenOption | None]:
    """(make a Fast Open child, the cookie option for the SYN,ACK) for a new SYN from
    ``client`` to ``server``."""
    mib = stack.cfg.mib
    foc = fo.find_option(seg)
    if foc is not None and not foc.cookie:
        mib["TcpExtTCPFastOpenCookieReqd"] += 1
    sysctl = stack.cfg.fastopen
    syn_data = bool(seg.payload)
    if not (sysctl & fo.TFO_SERVER_ENABLE and (syn_data or foc is not None)
            and _queue_ok(stack, lst, owner)):
        return False, None
    if sysctl & fo.TFO_SERVER_COOKIE_NOT_REQD or owner.opts.fastopen_no_cookie:
        mib["TcpExtTCPFastOpenPassive"] += 1
        return True, None
    if foc is None:
        return False, None
    keys = listener_keys(stack, owner)
    valid = fo.make_cookie(keys[0], client, server)
    if foc.cookie:
        for i, key in enumerate(keys):
            if fo.make_cookie(key, client, server) == foc.cookie:
                mib["TcpExtTCPFastOpenPassive"] += 1
                if i:
                    mib["TcpExtTCPFastOpenPassiveAltKey"] += 1
                    return True, fo.FastOpenOption(valid, foc.exp)
                return True, None
        mib["TcpExtTCPFastOpenPassiveFail"] += 1
    return False, fo.FastOpenOption(valid, foc.exp)


def start_child(stack: Stack, lst: Listener, child: Connection, syn: TcpSegment, now: int,
                reply: fo.FastOpenOption | None, ip_ecn: int = 0) -> None:
    """The Fast Open child goes straight to the accept queue, still in SYN_RECEIVED
    (Linux tcp_conn_request(): inet_csk_reqsk_queue_add() at once)."""
    child.open_fastopen_child(syn, now=now, reply=reply, ip_ecn=ip_ecn)
    lst.fastopen_children.add(child)


def start_client(stack: Stack, sock: Sock, conn: Connection, ip: str) -> bool:
    """Fast Open state for an active open to ``ip`` (Linux tcp_fastopen_cookie_check()
    and tcp_fastopen_defer_connect()). True when the SYN may carry data now (a cookie
    is cached, or 0x4 / TCP_FASTOPEN_NO_COOKIE says none is needed)."""
    cache = stack.tfo_cache
    cookie, mss, exp = cache.lookup(ip)
    tfo = conn.tfo = fo.FastOpenState(cache=cache, dst=ip, exp=exp)
    no_cookie = bool(stack.cfg.int("net.ipv4.tcp_fastopen") & fo.TFO_CLIENT_NO_COOKIE) \
        or sock.opts.fastopen_no_cookie
    if no_cookie:
        tfo.cookie = None
        tfo.room = conn.syn_data_room(mss)
        return True
    if cookie:
        tfo.cookie = cookie
        tfo.room = conn.syn_data_room(mss)
        return True
    tfo.cookie = b""                  # a cookie request, no data
    tfo.client_fail = fo.TFO_COOKIE_UNAVAILABLE
    return False
