"""The packetdrill language: tokens, times, calls, structs, packets, options, errors."""

from pathlib import Path

import pytest

from synack.drill import ast
from synack.drill.lexer import DrillSyntaxError, tokenize
from synack.drill.parse import parse_file, parse_text

PKT = Path(__file__).parent / "pkt"


def events(text: str, **defines: str) -> tuple[ast.Event, ...]:
    return parse_text("0 `true`\n" + text, "t.pkt", defines).events[1:]


def one(text: str, **defines: str) -> ast.Event:
    (ev,) = events(text, **defines)
    return ev


def error(text: str) -> str:
    with pytest.raises(DrillSyntaxError) as exc:
        parse_text(text, "bad.pkt")
    return str(exc.value)


# --- tokens -------------------------------------------------------------------------

def test_longest_match_splits_times_ellipses_and_ranges() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("+.1...0.200 1:1001(1000)")][:-1]
    assert kinds == [("CHAR", "+"), ("FLOAT", ".1"), ("ELLIPSIS", "..."), ("FLOAT", "0.200"),
                     ("INTEGER", "1"), ("CHAR", ":"), ("INTEGER", "1001"), ("CHAR", "("),
                     ("INTEGER", "1000"), ("CHAR", ")")]


def test_hex_digit_runs_are_words_but_numbers_are_integers() -> None:
    toks = tokenize("0123456789abcdef 1000 0x70403 192.0.2.1")
    assert [(t.kind, t.value) for t in toks[:-1]] == [
        ("WORD", "0123456789abcdef"), ("INTEGER", 1000), ("HEX", 0x70403), ("IPV4", "192.0.2.1")]


def test_comments_code_and_commands_are_single_tokens() -> None:
    toks = tokenize("// c++\n/* c\n */ %{ assert x == 1 }% `echo a \\\n b`")
    assert [(t.kind, t.value, t.line) for t in toks[:-1]] == [
        ("CODE", "assert x == 1", 3), ("BACKQUOTED", "echo a \\\n b", 3)]


def test_defines_replace_words_with_typed_values() -> None:
    toks = tokenize("A B C D", defines={"A": "42", "B": '"s"', "C": "`cmd`", "D": "host_x"})
    assert [(t.kind, t.value) for t in toks[:-1]] == [
        ("INTEGER", 42), ("STRING", "s"), ("BACKQUOTED", "cmd"), ("WORD", "host_x")]


# --- script structure and times --------------------------------------------------------

def test_header_options_init_and_cleanup_commands() -> None:
    s = parse_text("--tolerance_usecs=10000\n--strict_segments\n`init.sh`\n"
                   "0 close(3) = 0\n`cleanup.sh`\n", "x.pkt")
    assert s.options == (("tolerance_usecs", "10000"), ("strict_segments", None))
    assert s.option("tolerance_usecs") == "10000"
    assert s.init_command == "init.sh" and s.cleanup_command == "cleanup.sh"
    assert s.init_line == 3 and s.events[0].line == 4


def test_every_kind_of_time() -> None:
    evs = events("+.1 > . 1:1(0) ack 1\n0.5 > . 1:1(0) ack 1\n* > . 1:1(0) ack 1\n"
                 "+.1~+.2 > . 1:1(0) ack 1\n1~1.5 > . 1:1(0) ack 1\n")
    assert [e.time for e in evs] == [
        ast.Time(ast.TimeKind.RELATIVE, 100_000), ast.Time(ast.TimeKind.ABSOLUTE, 500_000),
        ast.Time(ast.TimeKind.ANY), ast.Time(ast.TimeKind.RELATIVE_RANGE, 100_000, 200_000),
        ast.Time(ast.TimeKind.ABSOLUTE_RANGE, 1_000_000, 1_500_000)]


def test_blocking_call_has_an_end_time_of_the_same_kind() -> None:
    ev = one("+.1...0.200 connect(3, ..., ...) = 0")
    assert isinstance(ev, ast.SyscallEvent)
    assert ev.time == ast.Time(ast.TimeKind.RELATIVE, 100_000)
    assert ev.end == ast.Time(ast.TimeKind.RELATIVE, 200_000)


# --- system calls ----------------------------------------------------------------------

def test_call_arguments_result_errno_and_note() -> None:
    ev = one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    assert isinstance(ev, ast.SyscallEvent)
    assert ev.name == "connect"
    assert ev.args == (ast.Int(3), ast.ELLIPSIS, ast.ELLIPSIS)
    assert ev.result == ast.Int(-1)
    assert ev.errno == "EINPROGRESS" and ev.note == "Operation now in progress"


def test_structs_lists_or_and_named_fields() -> None:
    ev = one("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0")
    assert isinstance(ev, ast.SyscallEvent)
    linger = ev.args[3]
    assert isinstance(linger, ast.Struct)
    assert linger.field("l_onoff") == ast.Int(1) and linger.field("l_linger") == ast.Int(0)
    ev = one("+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
    assert isinstance(ev, ast.SyscallEvent)
    assert ev.args[2] == ast.BinOp("|", ast.Name("O_RDWR"), ast.Name("O_NONBLOCK"))
    ev = one("+0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1")
    assert isinstance(ev, ast.SyscallEvent)
    (pfd,) = ev.args[0].items  # type: ignore[union-attr]
    assert isinstance(pfd, ast.Struct) and pfd.field("revents") == ast.Name("POLLOUT")


def test_iovecs_msghdrs_and_address_functions() -> None:
    ev = one("+0 writev(4, [{..., 10}, {..., 20}], 2) = 30")
    assert isinstance(ev, ast.SyscallEvent)
    assert ev.args[1] == ast.ListExpr((ast.Struct((ast.ELLIPSIS, ast.Int(10))),
                                       ast.Struct((ast.ELLIPSIS, ast.Int(20)))))
    ev = one("+0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 100}], msg_flags=0}, 0)"
             " = 100")
    assert isinstance(ev, ast.SyscallEvent)
    msg = ev.args[1]
    assert isinstance(msg, ast.Struct)
    assert msg.items[1] == ast.Field("msg_iov", ast.ListExpr(
        (ast.Struct((ast.ELLIPSIS, ast.Int(100))),)), ast.Int(1))
    ev = one('+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), '
             'sin_addr=inet_addr("192.0.2.1")}, 16) = 0')
    assert isinstance(ev, ast.SyscallEvent)
    addr = ev.args[1]
    assert isinstance(addr, ast.Struct)
    assert addr.field("sin_port") == ast.Call("htons", (ast.Int(8080),))


def test_strings_concatenate_and_may_end_in_an_ellipsis() -> None:
    ev = one('+0 getsockopt(3, SOL_TCP, TCP_CONGESTION, "cu" "bic"..., [16]) = 0')
    assert isinstance(ev, ast.SyscallEvent)
    assert ev.args[3] == ast.Str("cubic", truncated=True)


# --- packets ---------------------------------------------------------------------------

def test_tcp_packet_with_every_option_kind() -> None:
    ev = one("+0 < S. 0:0(0) ack 1 win 5792 <mss 1460,sackOK,TS val 7 ecr 9,nop,wscale 7,"
             "sack 1:2 3:4,eol,FO abcd,FOEXP,md5 00112233445566778899aabbccddeeff>",
             )
    assert isinstance(ev, ast.PacketEvent) and ev.inbound
    p = ev.packet
    assert isinstance(p, ast.TcpPacket)
    assert (p.flags, p.ack_flag, p.seq, p.end_seq, p.length, p.ack, p.win) == \
        ("S", True, 0, 0, 0, 1, 5792)
    assert p.options == (
        ast.TcpOption("mss", value=1460), ast.TcpOption("sackOK"),
        ast.TcpOption("TS", val=7, ecr=9), ast.TcpOption("nop"), ast.TcpOption("wscale", value=7),
        ast.TcpOption("sack", blocks=((1, 2), (3, 4))), ast.TcpOption("eol"),
        ast.TcpOption("FO", cookie="abcd"), ast.TcpOption("FOEXP", cookie=""),
        ast.TcpOption("md5", cookie="00112233445566778899aabbccddeeff"))


def test_flags_dot_dash_ellipsis_options_ip_fields_and_ports() -> None:
    ev = one("+0 > [ect0] P. 1:1001(1000) ack 1 <...>")
    assert isinstance(ev, ast.PacketEvent) and not ev.inbound
    assert ev.ip == ast.IpInfo(ecn="ect0")
    assert isinstance(ev.packet, ast.TcpPacket) and ev.packet.options is None
    ev = one("+0 < (tos 0x10, flowlabel 0x3) - 0:0(0) win 0")
    assert isinstance(ev, ast.PacketEvent) and ev.ip == ast.IpInfo(tos=0x10, flowlabel=3)
    assert isinstance(ev.packet, ast.TcpPacket) and ev.packet.flags == ""
    assert not ev.packet.ack_flag
    ev = one("+0 < 1234>8080 SEW 0:0(0) win 100")
    assert isinstance(ev, ast.PacketEvent) and isinstance(ev.packet, ast.TcpPacket)
    assert (ev.packet.src_port, ev.packet.dst_port, ev.packet.flags) == (1234, 8080, "SEW")


def test_icmp_packets() -> None:
    ev = one("+0 < icmp unreachable frag_needed mtu 840 [0:1000(1000)]")
    assert isinstance(ev, ast.PacketEvent)
    assert ev.packet == ast.IcmpPacket("unreachable", "frag_needed", 840, (0, 1000, 1000))
    ev = one("+0 < icmp unreachable CODE", CODE="host_unreachable")
    assert isinstance(ev, ast.PacketEvent)
    assert ev.packet == ast.IcmpPacket("unreachable", "host_unreachable")


def test_shell_and_code_events() -> None:
    evs = events("+0 `sysctl -q net.ipv4.tcp_sack=0`\n+0 %{ assert tcpi_rto == 1 }%\n")
    assert evs[0] == ast.ShellEvent(2, ast.Time(ast.TimeKind.RELATIVE, 0),
                                    "sysctl -q net.ipv4.tcp_sack=0")
    assert evs[1] == ast.CodeEvent(3, ast.Time(ast.TimeKind.RELATIVE, 0), "assert tcpi_rto == 1")


def test_our_own_scripts_parse() -> None:
    for path in sorted(PKT.glob("*.pkt")):
        script = parse_file(path)
        assert script.events, path
        assert script.init_command == "../common/defaults.sh"


# --- errors: one line, file:line ---------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "reason"), [
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S win 1000\n", 2,
     "expected a sequence number"),
    ("0 close(3) = 0\n\n+0 > S 0:10(5)\n", 3, "inconsistent segment"),
    ("0 close(3) = 0\n+0 < S 0:0(0) win 1 <mss 1460, bogus 1>\n", 2, "unknown TCP option"),
    ("+1 close(3) = 0\n", 1, "first event should be at time 0"),
    ("0 close(3) = 0\n* close(3) = 0\n", 2, "<star> can only be used with outbound"),
    ("0 close(3) = 0\n+.2~+.1 > . 1:1(0) ack 1\n", 2, "time range is backwards"),
    ("0 close(3) = 0\n+0 write(3, \"abc, 3) = 3\n", 2, "unterminated string"),
    ("0 close(3) = 0\n+0 < X 0:0(0) win 1\n", 2, "bad TCP flags"),
    ("0 close(3\n", 1, "expected ')'"),
    ("", 1, "no events"),
    ("0 f(" + "[" * 500 + ") = 0\n", 1, "nested more than 64 deep"),
    ("0 f(" + "A|" * 500 + "A) = 0\n", 1, "more than 64 terms"),
])
def test_errors_name_file_and_line(text: str, line: int, reason: str) -> None:
    message = error(text)
    assert message.startswith(f"bad.pkt:{line}: error: "), message
    assert reason in message
    assert "\n" not in message


def test_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DrillSyntaxError, match=r"missing\.pkt:0: error: cannot read script"):
        parse_file(tmp_path / "missing.pkt")
