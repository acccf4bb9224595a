"""struct tcp_info: offsets from the kernel header, round trips, a real kernel socket,
and ``ss -ti`` formatting checked against the system's ``ss``."""

from __future__ import annotations

import platform
import queue
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.tcp.tcpinfo import (
    LINUX_STATES,
    SIZE,
    TCPI_OPT_ECN,
    TCPI_OPT_SACK,
    TCPI_OPT_TIMESTAMPS,
    TCPI_OPT_WSCALE,
    TcpInfo,
    ss_line,
)

# (field, offset, size) for every plain field, worked out by hand from
# include/uapi/linux/tcp.h (Linux 6.18); bytes 6 and 7 are the bitfields.
HEADER_OFFSETS = [
    ("tcpi_state", 0, 1), ("tcpi_ca_state", 1, 1), ("tcpi_retransmits", 2, 1),
    ("tcpi_probes", 3, 1), ("tcpi_backoff", 4, 1), ("tcpi_options", 5, 1),
    ("tcpi_rto", 8, 4), ("tcpi_ato", 12, 4), ("tcpi_snd_mss", 16, 4), ("tcpi_rcv_mss", 20, 4),
    ("tcpi_unacked", 24, 4), ("tcpi_sacked", 28, 4), ("tcpi_lost", 32, 4),
    ("tcpi_retrans", 36, 4), ("tcpi_fackets", 40, 4),
    ("tcpi_last_data_sent", 44, 4), ("tcpi_last_ack_sent", 48, 4),
    ("tcpi_last_data_recv", 52, 4), ("tcpi_last_ack_recv", 56, 4),
    ("tcpi_pmtu", 60, 4), ("tcpi_rcv_ssthresh", 64, 4), ("tcpi_rtt", 68, 4),
    ("tcpi_rttvar", 72, 4), ("tcpi_snd_ssthresh", 76, 4), ("tcpi_snd_cwnd", 80, 4),
    ("tcpi_advmss", 84, 4), ("tcpi_reordering", 88, 4), ("tcpi_rcv_rtt", 92, 4),
    ("tcpi_rcv_space", 96, 4), ("tcpi_total_retrans", 100, 4),
    ("tcpi_pacing_rate", 104, 8), ("tcpi_max_pacing_rate", 112, 8),
    ("tcpi_bytes_acked", 120, 8), ("tcpi_bytes_received", 128, 8),
    ("tcpi_segs_out", 136, 4), ("tcpi_segs_in", 140, 4), ("tcpi_notsent_bytes", 144, 4),
    ("tcpi_min_rtt", 148, 4), ("tcpi_data_segs_in", 152, 4), ("tcpi_data_segs_out", 156, 4),
    ("tcpi_delivery_rate", 160, 8), ("tcpi_busy_time", 168, 8),
    ("tcpi_rwnd_limited", 176, 8), ("tcpi_sndbuf_limited", 184, 8),
    ("tcpi_delivered", 192, 4), ("tcpi_delivered_ce", 196, 4),
    ("tcpi_bytes_sent", 200, 8), ("tcpi_bytes_retrans", 208, 8),
    ("tcpi_dsack_dups", 216, 4), ("tcpi_reord_seen", 220, 4), ("tcpi_rcv_ooopack", 224, 4),
    ("tcpi_snd_wnd", 228, 4), ("tcpi_rcv_wnd", 232, 4), ("tcpi_rehash", 236, 4),
    ("tcpi_total_rto", 240, 2), ("tcpi_total_rto_recoveries", 242, 2),
    ("tcpi_total_rto_time", 244, 4), ("tcpi_received_ce", 248, 4),
    ("tcpi_delivered_e1_bytes", 252, 4), ("tcpi_delivered_e0_bytes", 256, 4),
    ("tcpi_delivered_ce_bytes", 260, 4), ("tcpi_received_e1_bytes", 264, 4),
    ("tcpi_received_e0_bytes", 268, 4), ("tcpi_received_ce_bytes", 272, 4),
    ("tcpi_accecn_fail_mode", 276, 2), ("tcpi_accecn_opt_seen", 278, 2),
]
BITFIELDS = [("tcpi_snd_wscale", 4), ("tcpi_rcv_wscale", 4),
             ("tcpi_delivery_rate_app_limited", 1), ("tcpi_fastopen_client_fail", 2)]
UNUSED_BITS_7 = 0xF8 if sys.byteorder == "little" else 0x1F  # 5 spare bits after the 1 + 2


def test_size_and_every_offset_match_the_header() -> None:
    assert SIZE == 280 and SIZE % 8 == 0
    names = [f.name for f in fields(TcpInfo)]
    assert names == [n for n, _, _ in HEADER_OFFSETS[:6]] + [n for n, _ in BITFIELDS] + [
        n for n, _, _ in HEADER_OFFSETS[6:]
    ]
    for name, offset, size in HEADER_OFFSETS:
        value = int.from_bytes(bytes(range(1, size + 1)), sys.byteorder)
        raw = replace(TcpInfo(), **{name: value}).pack()
        assert raw[offset:offset + size] == value.to_bytes(size, sys.byteorder), name
        assert raw.count(0) == SIZE - size, name


@pytest.mark.skipif(sys.byteorder != "little", reason="bit order shown for little-endian")
def test_bitfields_pack_from_the_low_bit() -> None:
    raw = TcpInfo(tcpi_snd_wscale=7, tcpi_rcv_wscale=14).pack()
    assert raw[6] == 0xE7 and raw.count(0) == SIZE - 1
    raw = TcpInfo(tcpi_delivery_rate_app_limited=1, tcpi_fastopen_client_fail=2).pack()
    assert raw[7] == 0b101 and raw.count(0) == SIZE - 1
    # Values wider than the bitfield are cut as a C assignment would cut them.
    assert TcpInfo(tcpi_snd_wscale=0x1F).pack()[6] == 0x0F


def test_shorter_buffers_from_older_kernels_leave_the_tail_zero() -> None:
    full = TcpInfo(tcpi_state=1, tcpi_rto=204_000, tcpi_total_retrans=9, tcpi_snd_wnd=65535,
                   tcpi_total_rto_time=17, tcpi_received_ce=3, tcpi_accecn_opt_seen=2)
    raw = full.pack()
    v6_7 = TcpInfo.unpack(raw[:248])  # 6.7 .. 6.17 end at tcpi_total_rto_time
    assert v6_7 == replace(full, tcpi_received_ce=0, tcpi_accecn_opt_seen=0)
    v2_6 = TcpInfo.unpack(raw[:104])  # the original struct ends at tcpi_total_retrans
    assert v2_6 == TcpInfo(tcpi_state=1, tcpi_rto=204_000, tcpi_total_retrans=9)
    assert TcpInfo.unpack(b"") == TcpInfo()
    # A newer kernel's longer struct: the fields we know are read, the rest ignored.
    assert TcpInfo.unpack(raw + b"\xff" * 16) == full


def _field_values() -> st.SearchStrategy[TcpInfo]:
    widths = {name: size * 8 for name, _, size in HEADER_OFFSETS}
    widths.update(BITFIELDS)
    return st.builds(TcpInfo, **{n: st.integers(0, (1 << w) - 1) for n, w in widths.items()})


@given(_field_values())
def test_pack_unpack_round_trip(info: TcpInfo) -> None:
    raw = info.pack()
    assert len(raw) == SIZE
    assert TcpInfo.unpack(raw) == info


@given(st.binary(min_size=0, max_size=SIZE + 8))
def test_unpack_pack_round_trip_on_bytes(data: bytes) -> None:
    if len(data) > 7:
        data = data[:7] + bytes([data[7] & ~UNUSED_BITS_7 & 0xFF]) + data[8:]
    raw = TcpInfo.unpack(data).pack()
    kept = data[:SIZE]
    assert raw == kept + bytes(SIZE - len(kept))


def test_state_numbers_are_the_kernels() -> None:
    assert LINUX_STATES == {
        "ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4, "FIN_WAIT_2": 5,
        "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10, "CLOSING": 11,
    }
    from synack.tcp.state import State

    assert set(LINUX_STATES) == {s.value for s in State}


# -- the real kernel ---------------------------------------------------------------

PAYLOAD = 100_000


class _Handler(socketserver.BaseRequestHandler):
    """Read the payload, report this side's tcp_info, reply, and wait for the close."""

    def handle(self) -> None:
        got = 0
        while got < PAYLOAD:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            got += len(chunk)
        self.server.infos.put(  # type: ignore[attr-defined]
            self.request.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512))
        self.request.sendall(b"ok")
        self.request.recv(1)


@pytest.fixture
def kernel_connection() -> Iterator[tuple[socket.socket, bytes]]:
    """A client socket that has sent PAYLOAD bytes over loopback, and the server's tcp_info."""
    if not hasattr(socket, "TCP_INFO"):
        pytest.skip("no TCP_INFO on this platform")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.infos = queue.Queue()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as client:
            client.sendall(b"x" * PAYLOAD)
            # The reply carries the ACK of everything sent.
            assert client.recv(2) == b"ok"
            server_raw = server.infos.get(timeout=10)  # type: ignore[attr-defined]
            yield client, server_raw
    finally:
        server.shutdown()
        server.server_close()


def _kernel_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def test_real_kernel_tcp_info(kernel_connection: tuple[socket.socket, bytes]) -> None:
    client, server_raw = kernel_connection
    raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    # 280 bytes on Linux 6.18 (what this module describes); 248 on 6.7 to 6.17.
    if _kernel_version() >= (6, 18):
        assert len(raw) >= SIZE
    elif _kernel_version() >= (6, 7):
        assert len(raw) == 248
    assert TcpInfo.unpack(raw).pack()[: len(raw)] == raw[:SIZE]
    if len(raw) >= SIZE:
        assert TcpInfo.unpack(raw).pack() == raw[:SIZE]

    info = TcpInfo.unpack(raw)
    assert info.tcpi_state == LINUX_STATES["ESTABLISHED"]
    assert info.tcpi_snd_mss > 0 and info.tcpi_rcv_mss > 0 and info.tcpi_advmss > 0
    assert info.tcpi_rtt > 0 and info.tcpi_rto >= 200_000
    assert info.tcpi_bytes_acked >= PAYLOAD  # the SYN counts too: PAYLOAD + 1
    assert info.tcpi_bytes_sent >= PAYLOAD and info.tcpi_bytes_received == 2
    assert info.tcpi_segs_out > 0 and info.tcpi_data_segs_out > 0
    assert info.tcpi_unacked == 0
    # Nothing is lost on loopback, but a loaded machine can delay the ACK past the tail
    # loss probe's timer (the kernel then resends the last segment): the two counters of
    # retransmissions, at different offsets of the struct, must agree rather than be 0.
    assert (info.tcpi_total_retrans == 0) == (info.tcpi_bytes_retrans == 0), info
    assert info.tcpi_total_retrans <= info.tcpi_segs_out
    assert info.tcpi_options & TCPI_OPT_WSCALE
    assert 0 <= info.tcpi_snd_wscale <= 14 and 0 <= info.tcpi_rcv_wscale <= 14
    assert info.tcpi_reordering == 3 and info.tcpi_snd_cwnd >= 1
    assert info.tcpi_pmtu >= info.tcpi_snd_mss and info.tcpi_snd_wnd > 0
    if sysctl("net/ipv4/tcp_sack") == "1":
        assert info.tcpi_options & TCPI_OPT_SACK
    if sysctl("net/ipv4/tcp_timestamps") == "1":
        assert info.tcpi_options & TCPI_OPT_TIMESTAMPS

    peer = TcpInfo.unpack(server_raw)
    assert peer.tcpi_state == LINUX_STATES["ESTABLISHED"]
    assert peer.tcpi_bytes_received == PAYLOAD and peer.tcpi_data_segs_in > 0
    # Window scales as each side sees them: mine to send is the peer's to receive.
    assert (peer.tcpi_snd_wscale, peer.tcpi_rcv_wscale) == (info.tcpi_rcv_wscale,
                                                            info.tcpi_snd_wscale)


def sysctl(name: str) -> str:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return ""


_ECN_PROBE = """
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
c.sendall(b"x" * 3000)
got = 0
while got < 3000:
    got += len(s.recv(4096))
print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512).hex())
"""


@pytest.mark.skipif(_kernel_version() < (6, 18), reason="the AccECN counters are Linux 6.18")
def test_real_kernel_accecn_tail_offsets() -> None:
    """With classic ECN on (in a private network namespace), the receiver counts ECT(0)
    payload bytes in tcpi_received_e0_bytes: the tail offsets are right."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        pytest.skip("needs unshare and ip")
    script = f"{ip} link set lo up && echo 1 > /proc/sys/net/ipv4/tcp_ecn && exec \"$0\" -c \"$1\""
    proc = subprocess.run([unshare, "-n", "sh", "-c", script, sys.executable, _ECN_PROBE],
                          check=False, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {proc.stderr.strip()}")
    info = TcpInfo.unpack(bytes.fromhex(proc.stdout.strip()))
    assert info.tcpi_options & TCPI_OPT_ECN
    assert info.tcpi_bytes_received == 3000
    assert info.tcpi_received_e0_bytes == 3000
    assert info.tcpi_received_ce_bytes == 0 and info.tcpi_received_e1_bytes == 0
    assert info.tcpi_accecn_fail_mode == 0 and info.tcpi_accecn_opt_seen == 0


# -- ss -ti --------------------------------------------------------------------------


def test_ss_line_reads_like_ss() -> None:
    info = TcpInfo(
        tcpi_state=1, tcpi_options=TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE,
        tcpi_snd_wscale=7, tcpi_rcv_wscale=7, tcpi_rto=204_000, tcpi_rtt=3500,
        tcpi_rttvar=1750, tcpi_ato=40_000, tcpi_snd_mss=1448, tcpi_pmtu=1500,
        tcpi_rcv_mss=536, tcpi_advmss=1448, tcpi_snd_cwnd=10, tcpi_snd_ssthresh=20,
        tcpi_bytes_sent=150_000, tcpi_bytes_retrans=2896, tcpi_bytes_acked=147_105,
        tcpi_bytes_received=77, tcpi_segs_out=110, tcpi_segs_in=60, tcpi_data_segs_out=105,
        tcpi_data_segs_in=1, tcpi_last_data_sent=12, tcpi_last_data_recv=340,
        tcpi_last_ack_recv=12, tcpi_pacing_rate=8_272_457, tcpi_max_pacing_rate=2**64 - 1,
        tcpi_delivery_rate=3_300_000, tcpi_delivered=100, tcpi_busy_time=400_000,
        tcpi_rwnd_limited=100_000, tcpi_unacked=3, tcpi_retrans=1, tcpi_total_retrans=2,
        tcpi_lost=1, tcpi_sacked=2, tcpi_dsack_dups=1, tcpi_reordering=3,
        tcpi_rcv_space=14480, tcpi_rcv_ssthresh=64088, tcpi_min_rtt=3101,
        tcpi_snd_wnd=64256, tcpi_rcv_wnd=64256,
    )
    assert ss_line(info, "cubic") == (
        "cubic wscale:7,7 rto:204 rtt:3.5/1.75 ato:40 mss:1448 pmtu:1500 rcvmss:536"
        " advmss:1448 cwnd:10 ssthresh:20 bytes_sent:150000 bytes_retrans:2896"
        " bytes_acked:147105 bytes_received:77 segs_out:110 segs_in:60 data_segs_out:105"
        " data_segs_in:1 send 33.1Mbps lastsnd:12 lastrcv:340 lastack:12"
        " pacing_rate 66.2Mbps delivery_rate 26.4Mbps delivered:100 busy:400ms"
        " rwnd_limited:100ms(25.0%) unacked:3 retrans:1/2 lost:1 sacked:2 dsack_dups:1"
        " rcv_space:14480 rcv_ssthresh:64088 minrtt:3.101 snd_wnd:64256 rcv_wnd:64256"
    )
    assert ss_line(info, "cubic", show_options=True).startswith("ts sack cubic wscale:7,7 ")
    numeric = ss_line(info, "cubic", numeric=True)
    assert " send 33097143bps " in numeric and " pacing_rate 66179656bps " in numeric


def test_ss_line_hides_what_ss_hides() -> None:
    # Infinite ssthresh, the 3 s initial RTO, an unlimited max pacing rate, no RTT yet.
    info = TcpInfo(tcpi_snd_ssthresh=0x7FFFFFFF, tcpi_rto=3_000_000, tcpi_reordering=3,
                   tcpi_pacing_rate=1000, tcpi_max_pacing_rate=2**64 - 1, tcpi_min_rtt=2**32 - 1)
    assert ss_line(info) == "pacing_rate 8kbps"
    assert ss_line(replace(info, tcpi_max_pacing_rate=125, tcpi_reordering=5)) == (
        "pacing_rate 8kbps/1kbps reordering:5"
    )
    assert ss_line(TcpInfo(tcpi_reordering=3, tcpi_delivery_rate=2 * 10**12 // 8)) == (
        "delivery_rate 2Tbps"
    )


_TIMES = ("lastsnd", "lastrcv", "lastack")


def _tokens(line: str) -> list[tuple[str, str]]:
    """An ss info line as (key, value) pairs, keeping the order."""
    words = line.split()
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("send", "pacing_rate", "delivery_rate") and i + 1 < len(words):
            out.append((w, words[i + 1]))
            i += 2
            continue
        key, _, value = w.partition(":")
        if key.startswith(("bbr", "dctcp")) or key in _TIMES:
            i += 1
            continue
        out.append((key, value))
        i += 1
    return out


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2 ss")
def test_ss_line_matches_the_system_ss(kernel_connection: tuple[socket.socket, bytes]) -> None:
    client, _ = kernel_connection
    local, peer = client.getsockname(), client.getpeername()
    cc = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()

    def snapshot() -> TcpInfo:
        info = TcpInfo.unpack(client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512))
        return replace(info, tcpi_last_data_sent=0, tcpi_last_data_recv=0, tcpi_last_ack_recv=0)

    for _ in range(5):  # the connection is idle; retry if the kernel moved under us
        before = snapshot()
        out = subprocess.run(
            ["ss", "-tin", "state", "established", "src", f"{local[0]}:{local[1]}",
             "dst", f"{peer[0]}:{peer[1]}"], check=True, capture_output=True, text=True, timeout=10,
        ).stdout
        if snapshot() == before:
            break
    info_lines = [ln.strip() for ln in out.splitlines() if ln.startswith(("\t", " "))]
    assert len(info_lines) == 1, out
    theirs = _tokens(info_lines[0])
    ours = _tokens(ss_line(before, cc, numeric=True))
    assert len(theirs) > 10, out
    # Every field ss prints we print identically and in the same order; we may print
    # fields newer than the installed ss (rcv_wnd and rehash arrived in iproute2 6.7).
    assert [t for t in ours if t[0] in dict(theirs)] == theirs
    assert {k for k, _ in ours} - {k for k, _ in theirs} <= {"rcv_wnd", "rehash"}
