"""A link that records: every IPv4 packet in and out, to a pcap file (``--pcap``).

:class:`RecordingLink` wraps any :class:`~synack.link.base.Link`. Packets are
written as the wire carries them: the stack's super-segments are cut into MSS
packets first (:mod:`synack.wire.gso`), stamped with the wall clock, in raw-IP
pcap (LINKTYPE_RAW) that tcpdump, Wireshark and ``synack ladder`` read. With
checksum offload the checksums written are the pseudo-header sums the device
completes, as a capture on an offloading interface shows them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from synack.link.base import Link
from synack.wire.gso import segment_all
from synack.wire.pcap import PcapWriter


class RecordingLink:
    """``link``, with every packet also written to ``path`` (a pcap file)."""

    def __init__(self, link: Link, path: str | os.PathLike[str]) -> None:
        self.link = link
        self.writer = PcapWriter(path)
        self._lock = threading.Lock()
        self.recorded = 0

    def __getattr__(self, name: str) -> Any:      # offload, mtu, name, next_deadline, tick
        return getattr(self.link, name)

    @property
    def offload(self) -> Any:
        return self.link.offload

    def fileno(self) -> int:
        return self.link.fileno()

    def _write(self, packets: list[bytes]) -> None:
        ts = time.time_ns() // 1000
        with self._lock:
            for p in packets:
                self.writer.write(p, ts)
            self.recorded += len(packets)

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        got = self.link.recv_packets(now=now)
        if got:
            self._write([p for p, _ in got])
        return got

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        if packets:
            off = self.link.offload
            self._write(segment_all(packets, csum_partial=off is not None and off.tx_csum))
        self.link.send_packets(packets, now=now)

    def close(self) -> None:
        """Close the link and the file. Idempotent."""
        self.link.close()
        with self._lock:
            self.writer.close()
