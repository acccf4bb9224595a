"""TunTapDevice's batch read and write (synack.link.tundev) on a SOCK_SEQPACKET pair,
which keeps frame boundaries as a TAP does: no root or device needed."""

from __future__ import annotations

import os
import select
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from synack.link import tundev
from synack.link.tundev import LONE_RUN, PEEK, TunTapDevice


class Wire:
    """A TunTapDevice whose descriptor is one end of a socket pair; ``peer`` is the
    kernel's side. ``failed`` counts the reads that failed with EAGAIN."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.peer, mine = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.mine = mine
        for s in (self.peer, mine):
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        dev = TunTapDevice.__new__(TunTapDevice)
        dev.fd = mine.fileno()
        dev.vnet = False
        dev.stats = Counter()
        dev._read_size = 14 + 65535
        dev._ep = select.epoll(1)
        dev._ep.register(dev.fd, select.EPOLLIN)
        self.peeks = 0

        def peek(timeout: float, n: int) -> list[tuple[int, int]]:
            self.peeks += 1
            return dev._ep.poll(timeout, n)

        dev._peek = peek
        dev._small = True
        dev._lone = 0
        dev._ip_at = 14                 # a TAP's frames: the Ethernet header first
        dev._wrote_bulk = False
        self.dev = dev
        self.failed = 0
        real_read = os.read

        def counting_read(fd: int, n: int) -> bytes:
            try:
                return real_read(fd, n)
            except BlockingIOError:
                self.failed += 1
                raise

        monkeypatch.setattr(tundev.os, "read", counting_read)

    def send(self, n: int, start: int = 0) -> list[bytes]:
        frames = [b"frame %d " % i + bytes(i % 50) for i in range(start, start + n)]
        for f in frames:
            self.peer.send(f)
        return frames

    def send_tcp(self, n: int, flags: int, start: int = 0) -> list[bytes]:
        """``n`` small Ethernet frames holding IPv4 TCP segments with ``flags``."""
        frames = []
        for i in range(start, start + n):
            ip_tcp = bytearray(52)
            ip_tcp[0], ip_tcp[33] = 0x45, flags
            ip_tcp[4:6] = i.to_bytes(2, "big")          # the IP ID: frames differ
            frames.append(bytes(12) + b"\x08\x00" + bytes(ip_tcp))
        for f in frames:
            self.peer.send(f)
        return frames

    def close(self) -> None:
        self.dev._ep.close()
        self.peer.close()
        self.mine.close()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    w = Wire(monkeypatch)
    yield w
    w.close()


@pytest.mark.parametrize("n", [0, 1, 2, PEEK, PEEK + 1, 9, 300])
@pytest.mark.parametrize("small", [True, False])
def test_a_batch_is_every_frame_waiting_in_order(wire: Wire, n: int, small: bool) -> None:
    wire.dev._small = small
    sent = wire.send(n)
    got = wire.dev.read_batch(256)
    assert got == sent[:256]
    assert wire.dev.read_batch(256) == sent[256:]
    assert wire.dev.stats["frames in"] == n
    assert wire.dev.read_batch(256) == []


def test_small_batches_end_by_looking_not_by_a_failed_read(wire: Wire) -> None:
    # As requests and replies come: a frame or two a batch, no read fails.
    for i in range(5):
        sent = wire.send(1 + i % 2, start=10 * i)
        assert wire.dev.read_batch() == sent
    assert wire.failed == 0
    # Up to PEEK frames: still looked for.
    sent = wire.send(PEEK)
    assert wire.dev.read_batch() == sent and wire.failed == 0


def test_past_peek_frames_it_reads_until_eagain_and_after_such_a_batch_too(wire: Wire) -> None:
    sent = wire.send(PEEK + 3)
    assert wire.dev.read_batch() == sent
    assert wire.failed == 1                      # data streaming in: read until EAGAIN
    sent = wire.send(1, start=50)
    assert wire.dev.read_batch() == sent
    assert wire.failed == 2                      # the batch after a big one did too
    sent = wire.send(2, start=60)
    assert wire.dev.read_batch() == sent
    assert wire.failed == 2                      # small again: looked
    sent = wire.send(5, start=70)
    assert wire.dev.read_batch(3) == sent[:3]    # the limit holds
    assert wire.dev.read_batch(3) == sent[3:]


def test_write_many_writes_each_frame_whole_in_order_and_counts_them(wire: Wire) -> None:
    frames = [b"a" * 60, b"b" * 1514, b"c"]
    wire.dev.write_many(frames)
    assert [wire.peer.recv(70000) for _ in frames] == frames
    assert wire.dev.stats["frames out"] == 3
    wire.dev.fd = None                           # closed: dropped and counted
    wire.dev.write_many(frames)
    assert wire.dev.stats["dropped device closed"] == 3
    assert wire.dev.read_batch() == []


def test_a_small_segment_that_ends_a_request_is_a_batch_without_a_peek(wire: Wire) -> None:
    # Requests and replies: a SYN, a short request with PSH, a FIN -- the next frame is
    # made by our reply, so there is nothing to look for behind it.
    for i, flags in enumerate((0x02, 0x18, 0x11)):
        sent = wire.send_tcp(1, flags, start=i)
        assert wire.dev.read_batch() == sent
    assert wire.peeks == 0 and wire.failed == 0


def test_lone_frames_in_a_row_are_followed_by_a_batch_that_peeks(wire: Wire) -> None:
    # A queue of such frames: LONE_RUN are read one a batch, then a batch looks again
    # and takes the rest (up to PEEK + 1 with peeks, as after any small batch).
    sent = wire.send_tcp(LONE_RUN + 3, 0x18)
    for i in range(LONE_RUN):
        assert wire.dev.read_batch() == sent[i:i + 1]
    assert wire.peeks == 0
    assert wire.dev.read_batch() == sent[LONE_RUN:]
    assert wire.peeks > 0 and wire.dev.stats["frames in"] == LONE_RUN + 3


def test_the_acks_of_bulk_data_are_read_as_every_frame_waiting(wire: Wire) -> None:
    # A download's return stream: after we wrote a full-sized frame, ACKs (no SYN, FIN,
    # RST or PSH) batch as before.
    wire.dev.write_many([bytes(1514)])
    sent = wire.send_tcp(3, 0x10)
    assert wire.dev.read_batch() == sent
    assert wire.peeks == 3                       # after each frame, whether another waits


def test_a_pure_ack_of_a_small_reply_is_a_batch_without_a_peek(wire: Wire) -> None:
    # Requests and replies: our reply was small, the ACK that comes back ends the exchange.
    wire.dev.write_many([bytes(66)])
    sent = wire.send_tcp(1, 0x10)
    assert wire.dev.read_batch() == sent and wire.peeks == 0
    wire.dev.write([bytes(14), bytes(1500)])     # a full-sized frame: its ACKs may queue
    sent = wire.send_tcp(2, 0x10, start=5)
    assert wire.dev.read_batch() == sent and wire.peeks == 2
