"""Rate limits on answers to segments synack did not want (issue 11), as Linux has them.

* Per connection, ``net.ipv4.tcp_invalid_ratelimit`` (500 ms): an ACK in answer to an
  invalid segment -- a challenge ACK (RFC 5961: an in-window RST or SYN, an ACK of data
  never sent or too old), a duplicate ACK to an out-of-window segment or to one that
  fails PAWS -- goes out at most once per interval, unless the segment carries data
  (Linux tcp_oow_rate_limited(): data is not part of an ACK loop).
* Host-wide, ``net.ipv4.tcp_challenge_ack_limit`` challenge ACKs a second (no limit at
  its default, 2^31 - 1, as on Linux since 6.0).
* Every skipped answer is counted under nstat's name in ``stack.cfg.mib``.

A blind attacker's 100 packets get at most 2 answers, and change nothing.
"""

from __future__ import annotations

import pytest
from transcript import L_ISN, R_ISN, Peer, established_server, listening

from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, RST, SYN

ISS, IRS = L_ISN, R_ISN
MS = 1000
LIMIT_US = 500 * MS


def _answers(peer: Peer, n: int, start: int, step: int, **fields: object) -> int:
    """Inject ``n`` segments ``step`` us apart; how many segments came back."""
    return sum(len(peer.send(now=start + i * step, **fields)) for i in range(n))


@pytest.mark.parametrize("attack", [
    {"seq": IRS + 100, "flags": RST},                              # in window, not exact
    {"seq": IRS + 500, "flags": SYN},                              # SYN in window
    {"seq": IRS + 1, "ack": ISS + 5000, "flags": ACK, "payload": b"evil"},  # ACKs unsent data
], ids=["rst", "syn", "bad-ack-data"])
def test_100_injected_packets_get_at_most_2_answers_and_change_nothing(attack) -> None:
    stack, fd, peer = established_server()
    # 100 packets over 1 s (10 ms apart): two 500 ms intervals, so two answers.
    answers = _answers(peer, 100, MS, 10 * MS, **attack)
    assert 1 <= answers <= 2
    assert stack.state(fd) is State.ESTABLISHED
    assert stack.cfg.mib["TcpExtTCPChallengeACK"] == answers
    assert stack.cfg.mib["TcpExtTCPACKSkippedChallenge"] == 100 - answers
    # Nothing was delivered: the next bytes read are the peer's real first bytes.
    assert stack.recv_some(fd, 100, now=2_000 * MS) is None
    peer.send(now=2_000 * MS, seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"ok")
    assert stack.recv(fd, 100, now=2_000 * MS) == b"ok"


def test_the_interval_is_tcp_invalid_ratelimit() -> None:
    stack, _fd, peer = established_server()
    rst = {"seq": IRS + 100, "flags": RST}
    assert len(peer.send(now=MS, **rst)) == 1
    assert peer.send(now=MS + LIMIT_US - 1, **rst) == []         # inside the interval
    assert len(peer.send(now=MS + LIMIT_US, **rst)) == 1         # the next one may go
    stack.cfg.set("net.ipv4.tcp_invalid_ratelimit", 0)           # 0: no per-connection limit
    assert len(peer.send(now=MS + LIMIT_US, **rst)) == 1
    assert len(peer.send(now=MS + LIMIT_US, **rst)) == 1


def test_out_of_window_data_is_always_answered_but_pure_acks_are_limited() -> None:
    # Linux tcp_oow_rate_limited(): a segment with data is answered every time.
    stack, _fd, peer = established_server()
    old_data = {"seq": (IRS - 1000) % 2**32, "ack": ISS + 1, "flags": ACK, "payload": b"x" * 10}
    assert _answers(peer, 5, MS, MS, **old_data) == 5
    far_ack = {"seq": (IRS + 1 + 10_000_000) % 2**32, "ack": ISS + 1, "flags": ACK}
    assert _answers(peer, 5, 10 * MS, MS, **far_ack) == 1
    assert stack.cfg.mib["TcpExtTCPACKSkippedSeq"] == 4


def test_host_wide_challenge_ack_budget() -> None:
    # tcp_challenge_ack_limit = 4: a budget of between 2 and 5 challenge ACKs a second
    # for the whole host, however many connections are attacked.
    stack, _fd, peer = established_server()
    stack.cfg.set("net.ipv4.tcp_challenge_ack_limit", 4)
    stack.cfg.set("net.ipv4.tcp_invalid_ratelimit", 0)
    sent = _answers(peer, 50, MS, MS, seq=IRS + 100, flags=RST)
    assert 2 <= sent <= 5
    assert stack.cfg.mib["TcpExtTCPChallengeACK"] == sent
    # The next second brings a new budget.
    assert len(peer.send(now=1_000 * MS + MS, seq=IRS + 100, flags=RST)) == 1


def _established_with_timestamps() -> tuple[Stack, int, Peer]:
    stack, lfd, peer = listening()
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460, timestamps=(1000, 0))
    assert synack.timestamps is not None
    ecr = synack.timestamps[0]
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, timestamps=(1001, ecr)) == []
    fd, _ = stack.accept(lfd)
    # The peer's data moves RCV.NXT and TS.Recent (1002).
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc", timestamps=(1002, ecr))
    assert stack.recv(fd, 10, now=0) == b"abc"
    return stack, fd, peer


def test_an_old_ack_failing_paws_is_dropped_without_an_answer() -> None:
    # Linux tcp_disordered_ack_check(): a pure ACK from before RCV.NXT that fails PAWS is
    # common under reordering; it is counted (TcpExtPAWSOldAck) and dropped silently.
    stack, fd, peer = _established_with_timestamps()
    assert peer.send(now=MS, seq=IRS + 1, ack=ISS + 1, flags=ACK, timestamps=(999, 0)) == []
    assert stack.cfg.mib["TcpExtPAWSOldAck"] == 1
    assert stack.cfg.mib["TcpExtPAWSEstabRejected"] == 0
    # At RCV.NXT, with old data, it is an old duplicate: a duplicate ACK, rate-limited.
    old = {"seq": IRS + 4, "ack": ISS + 1, "flags": ACK, "payload": b"zz",
           "timestamps": (999, 0)}
    assert len(peer.send(now=2 * MS, **old)) == 1               # data: always answered
    assert stack.cfg.mib["TcpExtPAWSEstabRejected"] == 1
    assert stack.recv_some(fd, 10, now=2 * MS) is None          # nothing new to read
    assert stack.state(fd) is State.ESTABLISHED


def test_time_wait_answers_old_acks_once_per_interval_and_every_fin() -> None:
    # Linux tcp_timewait_check_oow_rate_limit(): TIME_WAIT keeps its own last-answer time.
    stack, fd, peer = established_server()
    stack.close(fd, now=0)
    (fin,) = peer.out()
    peer.send(seq=IRS + 1, ack=fin.seq + 1, flags=FIN | ACK)          # -> TIME_WAIT
    assert len(stack.timewait) == 1
    old_ack = {"seq": IRS, "ack": fin.seq + 1, "flags": ACK}
    assert _answers(peer, 10, MS, MS, **old_ack) == 1
    assert stack.cfg.mib["TcpExtTCPACKSkippedTimeWait"] == 9
    # The peer's FIN again (it lost our ACK): answered every time.
    fin_again = {"seq": IRS + 1, "ack": fin.seq + 1, "flags": FIN | ACK}
    assert _answers(peer, 3, 20 * MS, MS, **fin_again) == 3
    # After the interval, an old ACK is answered again.
    assert len(peer.send(now=MS + LIMIT_US, **old_ack)) == 1
