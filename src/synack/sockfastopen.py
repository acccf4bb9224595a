"""``sendto(MSG_FASTOPEN)`` on a blocking :class:`synack.socket.socket` (TCP Fast Open's
client call, RFC 7413), kept beside the socket class."""

from __future__ import annotations

import errno
from typing import Any

from synack.sockopts import oserror as _oserror
from synack.tcp.state import State

_HANDSHAKING = (State.SYN_SENT, State.SYN_RECEIVED)


def sendto(sock: Any, data: bytes | bytearray | memoryview, flags: int,
           addr: tuple[Any, ...]) -> int:
    """sendto(MSG_FASTOPEN) as Linux's tcp_sendmsg_fastopen(): connect with the data
    in the SYN when a cookie is cached (else a cookie request goes), then, blocking,
    wait for the handshake as connect() does and send the rest; non-blocking, the
    bytes the SYN took or BlockingIOError(EINPROGRESS)."""
    host = sock._host
    st, loop = host.stack, host.loop
    end = sock._end()
    sent = 0
    try:
        with loop.cond:
            fd = sock._live_fd()
            try:
                sent = st.sendto_fastopen(fd, data, addr, now=loop.now())
            except BlockingIOError as exc:
                if exc.errno != errno.EINPROGRESS or sock._timeout == 0.0:
                    raise
            if sock._timeout == 0.0:
                return sent
            loop.wake()
            while st.state(fd) in _HANDSHAKING:
                sock._wait(end)
                fd = sock._live_fd()
            code = st.connect_ex(fd, addr, now=loop.now())
            if code not in (0, errno.EISCONN):
                raise _oserror(code)
    finally:
        loop.wake()
        if sock._ready is not None:
            sock._sync_ready()
    view = memoryview(data).cast("B")
    if sent < len(view):
        sent += sock.send(view[sent:], flags)
    return sent
