"""``synack drill`` against synack: our scripts pass, wrong scripts fail with packetdrill's
messages, and the runner's rules (timing, blocking calls, mapping) hold."""

import subprocess
import sys
from pathlib import Path

import pytest

from synack.drill.runner import Outcome
from synack.drill.session import Settings, run_file

PKT = Path(__file__).parent / "pkt"
HEAD = "`../common/defaults.sh`\n"
LISTEN = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
 +.01 < . 1:1(0) ack 1 win 257
"""


def run_text(tmp_path: Path, body: str, name: str = "t.pkt", **kw: object) -> Outcome:
    """Run a script written next to a copy of tests/common/defaults.sh."""
    (tmp_path / "common").mkdir(exist_ok=True)
    (tmp_path / "common" / "defaults.sh").write_text(
        (PKT.parent / "common" / "defaults.sh").read_text())
    d = tmp_path / "s"
    d.mkdir(exist_ok=True)
    path = d / name
    path.write_text(HEAD + body)
    return run_file(path, Settings(**kw))  # type: ignore[arg-type]


def passes(tmp_path: Path, body: str, **kw: object) -> None:
    out = run_text(tmp_path, body, **kw)
    assert out.passed, f"{out.message}\n{out.detail}"


def fails(tmp_path: Path, body: str, **kw: object) -> Outcome:
    out = run_text(tmp_path, body, **kw)
    assert not out.passed
    return out


# --- our scripts -----------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(PKT.glob("*.pkt")), ids=lambda p: p.name)
def test_our_scripts_pass_against_synack(path: Path) -> None:
    out = run_file(path, Settings())
    assert out.passed, f"{out.message}\n{out.detail}"


def test_a_wrong_ack_fails_with_packetdrills_message_and_a_ladder() -> None:
    out = run_file(PKT / "bad" / "wrong-ack.pkt", Settings())
    assert not out.passed and not out.unsupported
    first, script, actual = out.message.splitlines()
    assert first == (f"{PKT / 'bad' / 'wrong-ack.pkt'}:15: error handling packet: live packet "
                     "field tcp_ack_seq: expected: 1 (0x1) vs actual: 1001 (0x3e9)")
    assert script == "script packet:  0.010000 . 1:1(0) ack 1"
    assert actual.startswith("actual packet:  0.010000 . 1:1(0) ack 1001 win ")
    assert "SYN_RECEIVED -> ESTABLISHED" in out.detail      # synack's states in the ladder
    assert "PSH,ACK seq=1 ack=1 len=1000" in out.detail


def test_a_syntax_error_is_one_line() -> None:
    out = run_file(PKT / "bad" / "syntax-error.pkt", Settings())
    assert not out.passed
    assert out.message == (f"{PKT / 'bad' / 'syntax-error.pkt'}:3: error: syntax error: "
                           "expected a sequence number (start:end(length)) (an integer) but "
                           "found 'win'")


# --- packets and timing ----------------------------------------------------------------

def test_a_late_packet_is_a_timing_error(tmp_path: Path) -> None:
    out = fails(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n+0 write(4, ..., 10) = 10\n"
                                   "+.1 > P. 1:11(10) ack 1\n")
    assert "timing error: expected outbound packet at 0.110000 sec but happened at " \
           "0.010000 sec; tolerance 0.012500 sec" in out.message


def test_a_range_and_star_accept_any_time_inside(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n+0 write(4, ..., 10) = 10\n"
                              "+0~+.1 > P. 1:11(10) ack 1\n+.01 < . 1:1(0) ack 11 win 257\n"
                              "+0 write(4, ..., 10) = 10\n* > P. 11:21(10) ack 1\n")


def test_nagle_holds_a_small_segment_until_the_ack(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n+0 write(4, ..., 10) = 10\n"
                              "+0 > P. 1:11(10) ack 1\n+0 write(4, ..., 10) = 10\n"
                              "+.05 < . 1:1(0) ack 11 win 257\n+0 > P. 11:21(10) ack 1\n")


def test_tolerance_option_widens_the_window(tmp_path: Path) -> None:
    body = LISTEN + "+0 accept(3, ..., ...) = 4\n+0 write(4, ..., 10) = 10\n" \
                    "+.02 > P. 1:11(10) ack 1\n"
    assert "timing error" in fails(tmp_path, body).message
    passes(tmp_path, body, tolerance_us=30000)


def test_retransmission_comes_after_the_rto(tmp_path: Path) -> None:
    # Linux: initial RTO 1 s; the SYN-ACK times out and is sent again.
    passes(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000>
   +0 > S. 0:0(0) ack 1 <mss 1460>
   +1 > S. 0:0(0) ack 1 <mss 1460>
""")


def test_an_inbound_ack_field_is_mapped_to_the_stacks_isn(tmp_path: Path) -> None:
    # ack 11 acknowledges 10 bytes of the stack's data; it frees the send queue.
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 write(4, ..., 10) = 10
   +0 > P. 1:11(10) ack 1
   +0 ioctl(4, SIOCOUTQ, [10]) = 0
 +.01 < . 1:1(0) ack 11 win 257
   +0 ioctl(4, SIOCOUTQ, [0]) = 0
""")


def test_ioctl_values_are_checked(tmp_path: Path) -> None:
    out = fails(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 < P. 1:101(100) ack 1 win 257
   +0 > . 1:1(0) ack 101
   +0 ioctl(4, SIOCINQ, [99]) = 0
""")
    assert "runtime error in ioctl call: Bad ioctl optval: expected: 99 actual: 100" in \
        out.message


def test_an_echo_of_an_unknown_ts_val_is_an_error(tmp_path: Path) -> None:
    out = fails(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,sackOK,TS val 10 ecr 0,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 10,nop,wscale 8>
 +.01 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 20 ecr 555>
""")
    assert "unable to infer live TS ecr for script TS ecr 555" in out.message


def test_a_missing_packet_times_out(tmp_path: Path) -> None:
    out = fails(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n+0 > P. 1:11(10) ack 1\n")
    assert "error handling packet: Timed out waiting for packet" in out.message


def test_an_icmp_error_reaches_the_connection(tmp_path: Path) -> None:
    # Fragmentation needed: the segment is sent again cut to the new MSS (700 - 40).
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
   +0 < icmp unreachable frag_needed mtu 700 [1:1001(1000)]
   +0 > . 1:661(660) ack 1
   +0 > P. 661:1001(340) ack 1
""")


def test_poll_times_out_with_nothing_ready(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0...0.100 poll([{fd=4, events=POLLIN, revents=0}], 1, 100) = 0
""")


# --- calls -----------------------------------------------------------------------------

def test_blocking_accept_returns_when_the_handshake_completes(tmp_path: Path) -> None:
    passes(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...0.200 accept(3, ..., ...) = 4
  +.1 < S 0:0(0) win 32792 <mss 1000>
   +0 > S. 0:0(0) ack 1 <mss 1460>
  +.1 < . 1:1(0) ack 1 win 257
   +0 write(4, ..., 5) = 5
   +0 > P. 1:6(5) ack 1
""")


def test_blocking_call_returning_at_the_wrong_time_fails(tmp_path: Path) -> None:
    out = fails(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...0.100 accept(3, ..., ...) = 4
  +.1 < S 0:0(0) win 32792 <mss 1000>
   +0 > S. 0:0(0) ack 1 <mss 1460>
  +.1 < . 1:1(0) ack 1 win 257
""")
    assert "timing error: expected system call return at 0.100000 sec but happened at " \
           "0.200000 sec" in out.message


def test_a_call_still_blocked_1s_after_the_last_event_fails(tmp_path: Path) -> None:
    # packetdrill's await_idle_thread: at the end it waits 1 s for a blocked call.
    body = """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0...1.5 accept(3, ..., ...) = -1
"""
    out = fails(tmp_path, body)
    assert out.message.endswith("t.pkt:5: runtime error: exiting while a blocking system "
                                "call is in progress")


def test_blocking_connect_and_read(tmp_path: Path) -> None:
    passes(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0...0.100 connect(3, ..., ...) = 0
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
  +.1 < S. 0:0(0) ack 1 win 5792 <mss 1460,nop,wscale 2,nop,nop,sackOK>
   +0 > . 1:1(0) ack 1
   +0...0.050 read(3, ..., 100) = 40
 +.05 < P. 1:41(40) ack 1 win 5792
   +0 > . 1:1(0) ack 41
""")


def test_refused_connect_reports_econnrefused(tmp_path: Path) -> None:
    passes(tmp_path, """\
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
 +.01 < R. 0:0(0) ack 1 win 0
   +0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
""")


def test_wrong_errno_and_result_messages(tmp_path: Path) -> None:
    out = fails(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                          "+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                          "+0 connect(3, ..., ...) = -1 EAGAIN (nope)\n")
    assert out.message.endswith(":4: runtime error in connect call: Expected errno 11 "
                                "(Resource temporarily unavailable) but got 115 (Operation now "
                                "in progress)")
    out = fails(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = 1\n")
    assert "Expected result 1 but got 0 with errno 0 (Success)" in out.message


def test_poll_reports_revents(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
   +0 < P. 1:11(10) ack 1 win 257
   +0 > . 1:1(0) ack 11
   +0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1
""")
    out = fails(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n"
                                   "+0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1\n")
    assert "Expected result 1 but got 0" in out.message


def test_poll_with_a_timeout_blocks_until_data(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0...0.050 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 1000) = 1
 +.05 < P. 1:11(10) ack 1 win 257
""")


def test_linger_zero_close_sends_rst_and_options_read_back(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 setsockopt(4, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0
   +0 getsockopt(4, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, [8]) = 0
   +0 setsockopt(4, SOL_TCP, TCP_NODELAY, [1], 4) = 0
   +0 getsockopt(4, IPPROTO_TCP, TCP_NODELAY, [1], [4]) = 0
   +0 close(4) = 0
   +0 > R. 1:1(0) ack 1
""")


def test_getsockopt_value_mismatch(tmp_path: Path) -> None:
    out = fails(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n"
                                   "+0 getsockopt(4, SOL_TCP, TCP_NODELAY, [1], [4]) = 0\n")
    assert "Bad getsockopt optval: expected: 1 actual: 0" in out.message


def test_code_blocks_see_tcp_info(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 %{ assert tcpi_state == TCP_ESTABLISHED, tcpi_state }%
   +0 %{ assert tcpi_snd_mss == 1000 }%
""")
    out = fails(tmp_path, LISTEN + "+0 accept(3, ..., ...) = 4\n"
                                   "+0 %{ assert tcpi_snd_mss == 1460 }%\n")
    assert out.message.endswith(":10: error in Python code: AssertionError\n"
                                "    assert tcpi_snd_mss == 1460")


def test_shell_sysctls_change_the_stack(tmp_path: Path) -> None:
    # Without timestamps the SYN-ACK carries no TS option.
    passes(tmp_path, """\
    0 `sysctl -q net.ipv4.tcp_timestamps=0`
   +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,sackOK,TS val 1 ecr 0,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
""")


def test_unsupported_features_say_so(tmp_path: Path) -> None:
    out = fails(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                          "+0 setsockopt(3, SOL_TCP, TCP_ULP, [1], 4) = 0\n")
    assert out.unsupported
    assert out.message.endswith(":3: error: unsupported: setsockopt TCP_ULP")
    out = fails(tmp_path, "0 `tc qdisc replace dev tun0 root fq`\n")
    assert out.unsupported and "unsupported: shell command" in out.message
    out = fails(tmp_path, "0 sched_yield() = 0\n")
    assert out.unsupported and "unsupported: system call sched_yield()" in out.message
    out = fails(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                          "+0 setsockopt(3, SOL_SOCKET, SO_BOGUS, [1], 4) = 0\n")
    assert "bad symbol: unknown name 'SO_BOGUS'" in out.message


def test_cleanup_command_runs_and_its_failure_counts(tmp_path: Path) -> None:
    passes(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                     "`/tmp/sysctl_restore_${PPID}.sh`\n")
    out = fails(tmp_path, "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`reboot`\n")
    assert out.message.endswith("t.pkt: error executing cleanup command: unsupported: shell "
                                "command 'reboot' in simulation")


def test_an_unknown_ip_version_is_refused_in_one_line(tmp_path: Path) -> None:
    # ipv6 and ipv4-mapped-ipv6 run (tests/test_drill_ipv6.py, test_drill_mapped.py);
    # anything else is refused.
    out = fails(tmp_path, "0 close(3) = 0\n", ip_version="ipv5")
    assert out.message.startswith("command line: unsupported: --ip_version=ipv5 "), \
        out.message


def test_addresses_from_the_command_line(tmp_path: Path) -> None:
    passes(tmp_path, LISTEN, local_ip="192.0.2.1", remote_ip="198.51.100.1")


# --- the command -----------------------------------------------------------------------

def synack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synack.cli", "drill", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_passes_our_scripts_with_status_zero() -> None:
    scripts = sorted(str(p) for p in PKT.glob("*.pkt"))
    r = synack(*scripts)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS ") == len(scripts)
    assert r.stdout.splitlines()[-1] == \
        f"{len(scripts)} passed, 0 failed (0 unsupported) of {len(scripts)} scripts against synack"


def test_cli_failure_status_and_summary() -> None:
    r = synack(str(PKT / "rst-closed-port.pkt"), str(PKT / "bad" / "wrong-ack.pkt"),
               str(PKT / "bad" / "syntax-error.pkt"))
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    assert f"FAIL {PKT / 'bad' / 'wrong-ack.pkt'}" in r.stdout
    assert r.stdout.splitlines()[-1] == \
        "1 passed, 2 failed (0 unsupported) of 3 scripts against synack"


def test_cli_parse_only() -> None:
    r = synack("--parse-only", str(PKT / "rst-closed-port.pkt"),
               str(PKT / "bad" / "syntax-error.pkt"))
    assert r.returncode == 1
    first = (f"{PKT / 'bad' / 'syntax-error.pkt'}:3: error: syntax error: expected a sequence "
             "number (start:end(length)) (an integer) but found 'win'")
    assert r.stdout.splitlines() == [first, "1 of 2 scripts parse"]


def test_cli_bad_options_are_one_line() -> None:
    r = synack("-D", "nonsense", str(PKT / "rst-closed-port.pkt"))
    assert r.returncode == 2
    assert r.stderr.strip() == "synack: -D wants NAME=VALUE, not 'nonsense'"
