"""``synack run``: argument handling, and a live program with --pcap and --trace.

The live tests run ``synack run --netns`` (and ``python -m synack.run``) in a fresh
process against a kernel server inside the namespace: the program's connection
must be synack's (the server is reachable from nowhere else), its exit status
comes back, ``--pcap`` holds its packets and ``--trace`` its state changes.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from synack.cli import main
from synack.commands.run import parse_program
from synack.trace.capture import Connection, read_capture
from synack.wire.pcap import PcapReader, ip_packet

ROOT = Path(__file__).resolve().parent.parent
live = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                          reason="synack run --netns needs root and /dev/net/tun")


def test_parse_program_forms(tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("")
    assert parse_program(["--", "python", str(prog), "a", "-b"]) == ("script", str(prog),
                                                                      ["a", "-b"])
    assert parse_program(["python3.11", "-u", "-m", "http.server", "80"]) == (
        "module", "http.server", ["80"])
    assert parse_program(["python", "-mhttp.server"]) == ("module", "http.server", [])
    assert parse_program([sys.executable, "-c", "print(1)", "x"]) == ("code", "print(1)", ["x"])
    assert parse_program([str(prog)]) == ("script", str(prog), [])


@pytest.mark.parametrize("argv, why", [
    ([], "no program"),
    (["--", "bash", "-c", "true"], "runs Python programs"),
    (["--", "python", "/nonexistent/p.py"], "can't open file"),
    (["--", "python", "-X", "dev", "p.py"], "not supported"),
    (["--", "python", "-m"], "argument expected"),
])
def test_bad_program_is_a_one_line_error(argv: list[str], why: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--netns", "sa-never-made", *argv]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1, err


def _kernel_echo(ns: str) -> subprocess.Popen[bytes]:
    """A kernel server in ``ns``: answers each connection with the sha256 of what it got."""
    code = textwrap.dedent("""
        import hashlib, socket
        srv = socket.create_server(("0.0.0.0", 7000))
        print("listening", flush=True)
        while True:
            c, _ = srv.accept()
            h = hashlib.sha256()
            while d := c.recv(65536):
                h.update(d)
            c.sendall(h.hexdigest().encode())
            c.close()
    """)
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                         stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"listening\n"
    return p


def _distinct_payload(conn: Connection, direction: int) -> int:
    """Bytes of sequence space the segments in ``direction`` carried, each counted once."""
    spans = sorted((s.seq, s.seq + s.length) for s in conn.segments
                   if s.direction == direction and s.length)
    total, reach = 0, None
    for lo, hi in spans:
        if reach is not None and lo < reach:
            lo = reach
        if hi > lo:
            total += hi - lo
            reach = hi
    return total


PROGRAM = """
    import hashlib, os, subprocess, sys, threading
    import socket
    assert socket.__name__ == "synack.socket", socket.__name__
    def upload(data, out, i):
        s = socket.create_connection(("192.0.2.1", 7000), timeout=30)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while d := s.recv(100):
            got += d
        s.close()
        out[i] = got.decode() == hashlib.sha256(data).hexdigest()
    data = os.urandom(500_000)
    out = [None] * 3
    threads = [threading.Thread(target=upload, args=(data, out, i)) for i in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("threads", out)
    print("child", subprocess.run([sys.executable, "-c", "print(6 * 7)"],
                                  capture_output=True, text=True).stdout.strip())
    print("argv", sys.argv[1:])
    late = threading.Event()
    def after_main():          # a non-daemon thread still working when the main code ends
        late.wait()
        more = [None]
        upload(data, more, 0)
        print("after main", more, flush=True)
    threading.Thread(target=after_main).start()
    late.set()
    sys.exit(int(sys.argv[1]))
"""


@live
@pytest.mark.parametrize("entry", [["-m", "synack.cli", "run"], ["-m", "synack.run"]])
def test_program_runs_on_synack_with_pcap_and_trace(tmp_path: Path, entry: list[str]) -> None:
    ns = f"sa-runcmd-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        server = _kernel_echo(ns)
        prog = tmp_path / "prog.py"
        prog.write_text(textwrap.dedent(PROGRAM))
        pcap = tmp_path / "run.pcap"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, *entry, "--netns", ns, "--pcap", str(pcap),
                            "--trace", "--", "python", str(prog), "7", "x"],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        said = f"{r.stdout}\n{r.stderr}"
        assert r.returncode == 7, said
        assert "threads [True, True, True]" in r.stdout, said
        assert "child 42" in r.stdout, said
        assert "argv ['7', 'x']" in r.stdout, said
        assert "after main [True]" in r.stdout, said
        assert r.stderr.count("CLOSED -> SYN_SENT (connect())") == 4, said
        cap = read_capture(pcap)
        assert len(cap.connections) == 4
        for conn in cap.connections:
            assert conn.endpoint(1) == ("192.0.2.1", 7000)
            # Each byte once; a retransmission (a tail loss probe on a busy machine) is
            # allowed to repeat some, and the capture then holds more than 500,000.
            assert _distinct_payload(conn, 0) == 500_000, [
                (s.seq, s.length, s.marks) for s in conn.segments if s.direction == 0][-5:]
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


@live
def test_asyncio_default_loop_under_synack_run(tmp_path: Path) -> None:
    ns = f"sa-runaio-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        server = _kernel_echo(ns)
        prog = tmp_path / "aio.py"
        prog.write_text(textwrap.dedent("""
            import asyncio, hashlib, os
            async def one(data):
                r, w = await asyncio.open_connection("192.0.2.1", 7000)
                w.write(data)
                await w.drain()
                w.write_eof()
                got = await r.read()
                w.close()
                await w.wait_closed()
                return got.decode() == hashlib.sha256(data).hexdigest()
            async def main():
                data = os.urandom(300_000)
                print(await asyncio.gather(*[one(data) for _ in range(4)]))
            asyncio.run(main())
        """))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "synack.cli", "run", "--netns", ns, "--",
                            "python", str(prog)], capture_output=True, text=True, env=env,
                           timeout=120, check=False)
        assert r.returncode == 0 and "[True, True, True, True]" in r.stdout, \
            f"{r.stdout}\n{r.stderr}\n({time.monotonic() - start:.1f} s)"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)



@live
def test_udp_program_under_synack_run(tmp_path: Path) -> None:
    """A UDP client, unmodified: its datagrams are synack's (the kernel echoes them)."""
    ns = f"sa-runudp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    echo = None
    try:
        code = textwrap.dedent("""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 5353))
            print("bound", flush=True)
            while True:
                data, peer = s.recvfrom(65535)
                s.sendto(data[::-1], peer)
        """)
        echo = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                                stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline() == b"bound\n"
        prog = tmp_path / "udp.py"
        prog.write_text(textwrap.dedent("""
            import os, socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            ok = []
            for n in (1, 1000, 1400):
                data = os.urandom(n)
                for _ in range(5):                    # UDP: retry a lost datagram
                    s.sendto(data, ("192.0.2.1", 5353))
                    try:
                        got, peer = s.recvfrom(65535)
                    except TimeoutError:
                        continue
                    ok.append(got == data[::-1] and peer == ("192.0.2.1", 5353))
                    break
            print("udp", ok)
        """))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, "-m", "synack.cli", "run", "--netns", ns, "--",
                            "python", str(prog)], capture_output=True, text=True, env=env,
                           timeout=120, check=False)
        assert r.returncode == 0 and "udp [True, True, True]" in r.stdout, \
            f"{r.stdout}\n{r.stderr}"
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


@live
def test_asyncio_tls_under_synack_run(tmp_path: Path) -> None:
    """asyncio's TLS (ssl.MemoryBIO over synack's transport) against a kernel TLS server."""
    ns = f"sa-runtls-{os.getpid()}"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=synack-test", "-keyout", str(key), "-out", str(cert), "-days", "1"],
                   check=True, capture_output=True)
    blob = os.urandom(1_000_000)
    (tmp_path / "blob").write_bytes(blob)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        code = textwrap.dedent(f"""
            import socket, ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain({str(cert)!r}, {str(key)!r})
            blob = open({str(tmp_path / "blob")!r}, "rb").read()
            srv = socket.create_server(("0.0.0.0", 4433))
            print("listening", flush=True)
            while True:
                c, _ = srv.accept()
                with ctx.wrap_socket(c, server_side=True) as t:
                    t.sendall(blob)
        """)
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                                  stdout=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline() == b"listening\n"
        prog = tmp_path / "tls.py"
        prog.write_text(textwrap.dedent("""
            import asyncio, hashlib, ssl
            async def main():
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                r, w = await asyncio.open_connection("192.0.2.1", 4433, ssl=ctx)
                data = await r.read()
                w.close()
                print("tls", hashlib.sha256(data).hexdigest())
            asyncio.run(main())
        """))
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, "-m", "synack.cli", "run", "--netns", ns, "--",
                            "python", str(prog)], capture_output=True, text=True, env=env,
                           timeout=120, check=False)
        assert r.returncode == 0 and f"tls {hashlib.sha256(blob).hexdigest()}" in r.stdout, \
            f"{r.stdout}\n{r.stderr}"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


DNS_SERVER = """
    import socket, struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 53))
    print("dns", flush=True)
    while True:
        q, peer = s.recvfrom(512)
        ident, flags, qd = struct.unpack_from("!HHH", q)
        pos, labels = 12, []
        while q[pos]:
            labels.append(q[pos + 1:pos + 1 + q[pos]].decode())
            pos += 1 + q[pos]
        question = q[12:pos + 5]
        name = ".".join(labels)
        if name == "kernel.test":
            answer = b"\\xc0\\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
            s.sendto(struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer, peer)
        else:
            s.sendto(struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question, peer)
"""

RESOLVING = """
    import hashlib, socket
    assert socket.__name__ == "synack.socket"
    addr = socket.gethostbyname("kernel.test")
    print("resolved", addr)
    s = socket.create_connection(("kernel.test", 7000), timeout=30)
    s.sendall(b"x" * 1000)
    s.shutdown(socket.SHUT_WR)
    print("echo", s.recv(100).decode() == hashlib.sha256(b"x" * 1000).hexdigest())
    try:
        socket.getaddrinfo("nowhere.test", 80)
    except socket.gaierror as exc:
        print("nxdomain", exc.errno == socket.EAI_NONAME)
"""


@live
@pytest.mark.parametrize("how", ["option", "netns resolv.conf"])
def test_names_resolve_by_dns_over_synack(tmp_path: Path, how: str) -> None:
    """A name not in /etc/hosts is asked of the nameserver over synack's UDP (the one
    given, or the namespace's own resolv.conf as `ip netns exec` would show it)."""
    ns = f"sa-rundns-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    etc = Path("/etc/netns") / ns
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_kernel_echo(ns))
        dns = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                textwrap.dedent(DNS_SERVER)], stdout=subprocess.PIPE)
        procs.append(dns)
        assert dns.stdout is not None and dns.stdout.readline() == b"dns\n"
        extra = ["--nameserver", "192.0.2.1"]
        if how != "option":
            etc.mkdir(parents=True)
            (etc / "resolv.conf").write_text("nameserver 192.0.2.1\n")
            extra = []
        prog = tmp_path / "dns.py"
        prog.write_text(textwrap.dedent(RESOLVING))
        pcap = tmp_path / "dns.pcap"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, "-m", "synack.cli", "run", "--netns", ns,
                            "--pcap", str(pcap), *extra, "--", "python", str(prog)],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        said = f"{r.stdout}\n{r.stderr}"
        assert r.returncode == 0, said
        assert "resolved 192.0.2.1" in r.stdout and "echo True" in r.stdout, said
        assert "nxdomain True" in r.stdout, said
        with PcapReader(pcap) as rd:
            ips = [ip for rec in rd if (ip := ip_packet(rec)) is not None]
        udp53 = [ip for ip in ips if ip[9] == 17 and 53 in struct.unpack_from(
            "!HH", ip, (ip[0] & 15) * 4)]
        assert udp53, "no UDP in synack's own capture: the lookup did not go through synack"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if etc.exists():
            for f in etc.iterdir():
                f.unlink()
            etc.rmdir()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_bad_nameserver_is_a_one_line_error(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("")
    assert main(["run", "--nameserver", "dns.example", "--netns", "sa-never-made", "--",
                 "python", str(prog)]) == 2
    err = capsys.readouterr().err
    assert "--nameserver 'dns.example' is not an IP address" in err and \
        err.count("\n") == 1, err


def test_ipv6_nameserver_is_accepted() -> None:
    from synack.commands.run import pick_nameserver
    assert pick_nameserver("2001:DB8::53", None) == "2001:db8::53"
    assert pick_nameserver("192.0.2.53", None) == "192.0.2.53"
    assert pick_nameserver("none", None) is None
