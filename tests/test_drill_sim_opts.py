"""``synack drill`` in simulation: the calls issue 10 added (epoll, recvmsg's control
messages and MSG_ERRQUEUE, open/sendfile with the shell's files, pipe/splice), each
as Linux behaves, and the runner checking what packetdrill checks of them."""

from pathlib import Path

from test_drill_sim import LISTEN, fails, passes

ACCEPTED = LISTEN + "   +0 accept(3, ..., ...) = 4\n"


def test_epoll_level_edge_and_oneshot(tmp_path: Path) -> None:
    """Linux fs/eventpoll.c: level-triggered items are reported while ready; edge-
    triggered ones once per wakeup (new data is one); one-shot ones once until
    EPOLL_CTL_MOD re-arms them; EPOLLEXCLUSIVE with EPOLLONESHOT is EINVAL."""
    passes(tmp_path, ACCEPTED + """\
   +0 epoll_create(1) = 5
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN, fd=4}) = 0
   +0 epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0
   +0 < P. 1:101(100) ack 1 win 257
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 epoll_ctl(5, EPOLL_CTL_MOD, 4, {events=EPOLLIN|EPOLLET, fd=4}) = 0
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0
   +0 < P. 101:201(100) ack 1 win 257
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 epoll_ctl(5, EPOLL_CTL_MOD, 4, {events=EPOLLIN|EPOLLONESHOT, fd=4}) = 0
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0 < P. 201:301(100) ack 1 win 257
   +0 epoll_wait(5, {events=0, ptr=0}, 1, 0) = 0
   +0 epoll_ctl(5, EPOLL_CTL_DEL, 4, ...) = 0
   +0 epoll_ctl(5, EPOLL_CTL_DEL, 4, ...) = -1 ENOENT (No such file or directory)
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN|EPOLLEXCLUSIVE|EPOLLONESHOT, fd=4}) = -1 EINVAL (Invalid argument)
   +0 close(5) = 0
""")


def test_epoll_wait_events_are_checked(tmp_path: Path) -> None:
    out = fails(tmp_path, ACCEPTED + """\
   +0 epoll_create(1) = 5
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN|EPOLLOUT, fd=4}) = 0
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
""")
    assert "epoll_event->events does not match script: expected: 0x1 actual: 0x4" in out.message


def test_recvmsg_inq_cmsg_is_checked(tmp_path: Path) -> None:
    """TCP_CM_INQ: the bytes left after the read; a wrong expectation fails."""
    body = ACCEPTED + """\
   +0 setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0
   +0 < P. 1:1001(1000) ack 1 win 257
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 600}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=%d}]}, 0) = 600
"""
    passes(tmp_path, body % 400)
    out = fails(tmp_path, body % 401)
    assert "Bad cmsg 0 data: expected: 401 actual: 400" in out.message


def test_errqueue_empty_is_eagain_then_a_zerocopy_completion(tmp_path: Path) -> None:
    passes(tmp_path, ACCEPTED + """\
   +0 setsockopt(4, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=MSG_ERRQUEUE,
                  msg_control=[]}, MSG_ERRQUEUE) = -1 EAGAIN (Resource temporarily unavailable)
   +0 send(4, ..., 1000, MSG_ZEROCOPY) = 1000
   +0 > P. 1:1001(1000) ack 1
   +0 poll([{fd=4, events=POLLIN, revents=0}], 1, 0) = 0
   +0 < . 1:1(0) ack 1001 win 257
   +0 poll([{fd=4, events=POLLIN, revents=POLLERR}], 1, 0) = 1
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=MSG_ERRQUEUE,
                  msg_control=[{cmsg_level=SOL_IP, cmsg_type=IP_RECVERR,
                                cmsg_data={ee_errno=0, ee_origin=SO_EE_ORIGIN_ZEROCOPY,
                                           ee_type=0, ee_code=SO_EE_CODE_ZEROCOPY_COPIED,
                                           ee_info=0, ee_data=0}}]}, MSG_ERRQUEUE) = 0
""")


def test_sendfile_of_a_file_the_shell_made(tmp_path: Path) -> None:
    """rm -f and dd act on the simulated host's files; open() of a missing one is
    ENOENT; sendfile() sends the file's bytes."""
    passes(tmp_path, "0 `/bin/rm -f /tmp/f; /bin/dd bs=1 count=7 if=/dev/zero of=/tmp/f "
                     "status=none`\n" + ACCEPTED.replace("    0 socket", "   +0 socket") + """\
   +0 open("/tmp/nothing", O_RDONLY) = -1 ENOENT (No such file or directory)
   +0 open("/tmp/f", O_RDONLY) = 5
   +0 sendfile(4, 5, [0], 7) = 7
   +0 > P. 1:8(7) ack 1
   +0 close(5) = 0
""")


def test_splice_stops_at_the_urgent_mark(tmp_path: Path) -> None:
    """Linux tcp_splice_read(): the urgent byte next and nothing before it: 0, not a
    block (the gtests splice loop test)."""
    passes(tmp_path, ACCEPTED + """\
   +0 pipe([5, 6]) = 0
   +0 < U. 1:101(100) ack 1 win 257 urg 100
   +0 splice(4, NULL, 6, NULL, 50, 0) = 50
   +0 splice(4, NULL, 6, NULL, 99, 0) = 49
   +0 splice(4, NULL, 6, NULL, 1, 0) = 0
   +0 close(6) = 0
""")


def test_grep_over_proc_net_tcp(tmp_path: Path) -> None:
    """/proc/net/tcp rendered from the stack (tcp4_seq_show()'s layout: 0A is LISTEN,
    01 ESTABLISHED, 1F90 port 8080): a grep pipeline succeeds when it selects a line,
    else fails; what the simulation cannot read is unsupported."""
    passes(tmp_path, ACCEPTED
           + '   +0 `grep " 0A " /proc/net/tcp /proc/net/tcp6 | grep ":1F90"`\n'
           + '   +0 `grep " 01 " /proc/net/tcp | grep ":1F90"`\n')
    out = fails(tmp_path, LISTEN + '   +0 `grep " 0A " /proc/net/tcp | grep ":1F91"`\n')
    assert "grep selected nothing" in out.message
    out = fails(tmp_path, LISTEN + "   +0 `grep -c x /proc/net/tcp`\n")
    assert out.unsupported


def test_timestamping_reports_and_their_times_are_checked(tmp_path: Path) -> None:
    """SO_TIMESTAMPING with OPT_ID: the write's last byte (999) sent at 10 ms gives a
    SCHED report then SND; the time is checked within the tolerance, as packetdrill
    does."""
    body = ACCEPTED + """\
   +0 setsockopt(4, SOL_SOCKET, SO_TIMESTAMPING, [SOF_TIMESTAMPING_TX_SCHED |
        SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID], 4) = 0
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=MSG_ERRQUEUE|MSG_TRUNC,
                  msg_control=[{cmsg_level=SOL_SOCKET, cmsg_type=SCM_TIMESTAMPING,
                                cmsg_data={scm_sec=0,scm_nsec=%d}},
                               {cmsg_level=SOL_IP, cmsg_type=IP_RECVERR,
                                cmsg_data={ee_errno=ENOMSG, ee_origin=SO_EE_ORIGIN_TIMESTAMPING,
                                           ee_type=0, ee_code=0, ee_info=SCM_TSTAMP_SCHED,
                                           ee_data=999}}]}, MSG_ERRQUEUE) = 0
"""
    passes(tmp_path, body % 10_000_000)
    out = fails(tmp_path, body % 30_000_000)
    assert "Bad timestamp 0 in scm_timestamping 0" in out.message


def test_epoll_wait_with_a_timeout_blocks_until_ready_or_time(tmp_path: Path) -> None:
    """epoll_wait(timeout): returns at the wakeup that makes an item ready, else 0 at
    the timeout."""
    passes(tmp_path, ACCEPTED + """\
   +0 epoll_create(1) = 5
   +0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN|EPOLLET, fd=4}) = 0
   +0...0.100 epoll_wait(5, {events=0, ptr=0}, 1, 100) = 0
  +.1 < P. 1:11(10) ack 1 win 257
   +0 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, 0) = 1
   +0...0.050 epoll_wait(5, {events=EPOLLIN, fd=4}, 1, -1) = 1
  +.05 < P. 11:21(10) ack 1 win 257
""")
