"""synack.socket has the stdlib socket module's whole surface.

Every public name is there; the constants, enums, pure functions and
exception classes are the stdlib's own objects; the resolver answers numbers
and /etc/hosts as glibc's ``files`` source does (and DNS over synack UDP when
a host has a nameserver); families synack does not carry go to the kernel.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import synack.socket as ss
from synack import resolve
from synack.api_host import Host
from synack.dns import build_query, nameserver_from_resolv_conf, parse_answer
from synack.link.loopback import LinkPair

IP = "127.0.0.1"
WAIT = 10.0


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback(IP, seed=9)
    yield h
    h.close()


@pytest.fixture
def hosts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hosts"
    path.write_text("# test hosts\n"
                    "127.0.0.1 localhost\n"
                    "192.0.2.7 web.example.test web   # a comment\n"
                    "192.0.2.8 web.example.test\n"
                    "2001:db8::1 six.example.test\n")
    monkeypatch.setattr(resolve, "HOSTS_PATH", str(path))
    return path


def public(module: object) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")}


def test_every_public_stdlib_name_is_there() -> None:
    missing = public(socket) - public(ss)
    assert not missing, f"missing from synack.socket: {sorted(missing)}"
    assert set(socket.__all__) <= set(ss.__all__)


def test_every_public_socket_method_is_there() -> None:
    # Libraries read methods off the class at import time (trio reads socket.sendmsg).
    missing = public(socket.socket) - public(ss.socket)
    assert not missing, f"missing from synack.socket.socket: {sorted(missing)}"


def test_constants_enums_and_pure_functions_are_the_stdlibs() -> None:
    for name in public(socket):
        value = getattr(socket, name)
        if name.isupper() or name in ("AddressFamily", "SocketKind", "MsgFlag", "AddressInfo"):
            assert getattr(ss, name) is value or getattr(ss, name) == value, name
    for name in ("inet_aton", "inet_ntoa", "inet_pton", "inet_ntop", "htons", "ntohl",
                 "socketpair", "fromfd", "CMSG_LEN", "if_nametoindex"):
        assert getattr(ss, name) is getattr(socket, name), name
    assert ss.inet_pton(ss.AF_INET, "192.0.2.1") == b"\xc0\x00\x02\x01"
    assert ss.AF_UNSPEC == 0 and ss.SOCK_DGRAM == 2 and ss.MSG_PEEK == 2


def test_exceptions_are_the_stdlibs() -> None:
    assert ss.error is OSError and ss.timeout is TimeoutError is socket.timeout
    assert ss.gaierror is socket.gaierror and ss.herror is socket.herror
    with pytest.raises(socket.gaierror):
        ss.getaddrinfo("no.such.name.invalid", 80)


def test_synack_answers_the_calls_that_need_the_network() -> None:
    assert ss.socket is not socket.socket and ss.SocketType is ss.socket
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                 "getnameinfo", "getfqdn", "create_connection", "create_server",
                 "has_dualstack_ipv6", "getdefaulttimeout", "setdefaulttimeout"):
        assert getattr(ss, name) is not getattr(socket, name), name
    assert ss.has_ipv6 is False and ss.has_dualstack_ipv6() is False


def test_getaddrinfo_numeric_matches_the_c_library() -> None:
    # Numeric addresses never reach a resolver: the C library's answer is the reference.
    for args in [("192.0.2.1", 80), ("192.0.2.1", "80"), ("10.1", 0),
                 ("192.0.2.1", 53, ss.AF_INET, ss.SOCK_DGRAM),
                 ("192.0.2.1", None, 0, ss.SOCK_STREAM),
                 (None, 8080, ss.AF_INET, ss.SOCK_STREAM, 0, ss.AI_PASSIVE),
                 (None, 8080, ss.AF_INET, ss.SOCK_STREAM)]:
        want = socket.getaddrinfo(*args)      # type: ignore[arg-type]
        assert ss.getaddrinfo(*args) == want, args
    assert ss.getaddrinfo("192.0.2.1", "http", type=ss.SOCK_STREAM)[0][4] == ("192.0.2.1", 80)


def test_getaddrinfo_errors_are_glibcs() -> None:
    def code(*args: object, **kw: object) -> int:
        with pytest.raises(socket.gaierror) as exc:
            ss.getaddrinfo(*args, **kw)      # type: ignore[arg-type]
        return exc.value.errno
    assert code("web", 80, flags=ss.AI_NUMERICHOST) == ss.EAI_NONAME
    assert code("192.0.2.1", "no-such-service") == ss.EAI_SERVICE
    assert code("192.0.2.1", 80, ss.AF_INET6) == ss.EAI_FAMILY
    assert code(None, None) == ss.EAI_NONAME


def test_names_from_etc_hosts(hosts_file: Path) -> None:
    assert ss.gethostbyname("web") == "192.0.2.7"
    assert ss.gethostbyname_ex("WEB.example.test") == (
        "web.example.test", ["web"], ["192.0.2.7", "192.0.2.8"])
    infos = ss.getaddrinfo("web.example.test", 443, ss.AF_INET, ss.SOCK_STREAM, 0, ss.AI_CANONNAME)
    assert infos == [(ss.AF_INET, ss.SOCK_STREAM, 6, "web.example.test", ("192.0.2.7", 443)),
                     (ss.AF_INET, ss.SOCK_STREAM, 6, "", ("192.0.2.8", 443))]
    assert ss.gethostbyaddr("192.0.2.7") == ("web.example.test", ["web"], ["192.0.2.7"])
    assert ss.getnameinfo(("192.0.2.7", 80), 0) == ("web.example.test", "http")
    assert ss.getnameinfo(("192.0.2.7", 53), ss.NI_NUMERICHOST | ss.NI_DGRAM) == (
        "192.0.2.7", "domain")
    assert ss.getnameinfo(("192.0.2.99", 80), ss.NI_NUMERICSERV) == ("192.0.2.99", "80")
    assert ss.getfqdn("web") == "web.example.test"
    with pytest.raises(socket.gaierror):
        ss.gethostbyname("six.example.test")       # IPv6 only: synack carries IPv4
    with pytest.raises(socket.herror):
        ss.gethostbyaddr("192.0.2.99")


def test_sockets_connect_to_names_from_etc_hosts(host: Host, hosts_file: Path) -> None:
    with ss.create_server(("localhost", 9001), host=host) as srv, \
            ss.create_connection(("localhost", 9001), timeout=WAIT, host=host) as c:
        s, addr = srv.accept()
        assert c.getpeername() == (IP, 9001) and addr == c.getsockname()
        s.close()


def test_families_synack_does_not_carry_go_to_the_kernel(host: Host) -> None:
    u = ss.socket(ss.AF_UNIX, ss.SOCK_STREAM)
    assert type(u) is socket.socket and u.family == ss.AF_UNIX
    u.close()
    a, b = ss.socketpair()
    a.sendall(b"kernel")
    assert b.recv(10) == b"kernel"
    dup = ss.fromfd(a.fileno(), ss.AF_UNIX, ss.SOCK_STREAM)
    assert type(dup) is socket.socket
    for x in (a, b, dup):
        x.close()
    with pytest.raises(OSError) as exc:
        ss.socket(ss.AF_INET6, ss.SOCK_DGRAM, host=host)   # UDP over IPv6: not carried
    assert exc.value.errno == errno.EAFNOSUPPORT
    # TCP over IPv6 is synack's (issue 14, tests/test_socket_v6.py).
    six = ss.socket(ss.AF_INET6, host=host)
    assert type(six) is ss.socket and six.family == ss.AF_INET6
    six.close()


# ---------------------------------------------------------------- DNS over synack
def dns_reply(query: bytes, addrs: list[str], rcode: int = 0) -> bytes:
    """A server's answer: the question echoed, then A records pointing at the name."""
    ident = struct.unpack_from("!H", query)[0]
    end = query.index(b"\0", 12) + 5
    answers = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(a)
                       for a in addrs)
    return struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(addrs), 0, 0) + \
        query[12:end] + answers


def test_dns_over_synack_udp_to_the_hosts_nameserver(hosts_file: Path) -> None:
    pair = LinkPair()
    client = Host.on_link("198.51.100.1", pair.a, seed=1)
    server = Host.on_link("198.51.100.53", pair.b, seed=2)
    try:
        client.nameserver = "198.51.100.53"
        dns = ss.socket(ss.AF_INET, ss.SOCK_DGRAM, host=server)
        dns.bind(("0.0.0.0", 53))
        dns.settimeout(WAIT)
        questions: list[bytes] = []

        def serve() -> None:
            for _ in range(2):
                query, addr = dns.recvfrom(512)
                questions.append(query)
                if b"\x04miss" in query:
                    dns.sendto(dns_reply(query, [], rcode=3), addr)
                else:
                    dns.sendto(dns_reply(query, ["203.0.113.5", "203.0.113.6"]), addr)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        infos = ss.getaddrinfo("www.example.test", 80, ss.AF_INET, ss.SOCK_STREAM,
                               synack_host=client)
        assert [i[4] for i in infos] == [("203.0.113.5", 80), ("203.0.113.6", 80)]
        with pytest.raises(socket.gaierror) as exc:
            ss.getaddrinfo("miss.example.test", 80, synack_host=client)
        assert exc.value.errno == ss.EAI_NONAME
        t.join(WAIT)
        assert b"\x03www\x07example\x04test\x00\x00\x01\x00\x01" in questions[0]
        # /etc/hosts still comes first: no query for a name it has.
        assert ss.getaddrinfo("web", 80, synack_host=client)[0][4] == ("192.0.2.7", 80)
        assert len(questions) == 2
        dns.close()
    finally:
        client.close()
        server.close()
        pair.close()


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_dns_parse_answer_never_raises(data: bytes, ident: int) -> None:
    got = parse_answer(data, ident)
    assert got is None or isinstance(got[1], list)


def test_dns_query_and_answer_round_trip(tmp_path: Path) -> None:
    query = build_query(0x1234, "www.example.test")
    assert parse_answer(query, 0x1234) is None               # a query is not a reply
    reply = dns_reply(query, ["192.0.2.9"])
    assert parse_answer(reply, 0x1234) == (0, ["192.0.2.9"])
    assert parse_answer(reply, 0x4321) is None               # another query's id
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example.test\nnameserver 2001:db8::53\nnameserver 192.0.2.53\n")
    assert nameserver_from_resolv_conf(str(conf)) == "192.0.2.53"
    assert nameserver_from_resolv_conf(str(tmp_path / "none")) is None
