"""``synack run``: a program that talks to itself over 127.0.0.1, localhost and ::1
(host/loopback.py). The program's sockets are synack's; loopback traffic stays inside
the synack host (none of it is on the TAP, which ``--pcap`` records)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synack.wire.pcap import PcapReader, ip_packet

ROOT = Path(__file__).resolve().parent.parent
live = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                          reason="synack run --netns needs root and /dev/net/tun")

PROGRAM = """
    import hashlib, os, socket, threading, urllib.request
    from http.server import BaseHTTPRequestHandler, HTTPServer
    assert socket.__name__ == "synack.socket", socket.__name__
    BODY = os.urandom(300_000)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    got = urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=30).read()
    print("http", hashlib.sha256(got).hexdigest() == hashlib.sha256(BODY).hexdigest())
    httpd.shutdown()

    srv = socket.create_server(("localhost", 0))
    name = srv.getsockname()
    c = socket.create_connection(("localhost", name[1]), timeout=30)
    a, peer = srv.accept()
    c.sendall(b"ping")
    print("localhost", name[0], a.recv(10), peer[0], c.getsockname()[0])
    for s in (c, a, srv):
        s.close()

    srv6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    c6 = socket.create_connection(("::1", srv6.getsockname()[1]), timeout=30)
    a6, peer6 = srv6.accept()
    c6.sendall(b"six")
    print("v6", a6.recv(10), peer6[0])
    for s in (c6, a6, srv6):
        s.close()

    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v.sendto(b"dgram", u.getsockname())
    data, src = u.recvfrom(100)
    print("udp", data, src[0])
"""


@live
def test_program_talks_to_itself_under_synack_run(tmp_path: Path) -> None:
    ns = f"sa-runlo-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        prog = tmp_path / "prog.py"
        prog.write_text(textwrap.dedent(PROGRAM))
        pcap = tmp_path / "run.pcap"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SYNACK_RUN_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, "-m", "synack.cli", "run", "--netns", ns,
                            "--pcap", str(pcap), "--", "python", str(prog)],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        said = f"{r.stdout}\n{r.stderr}"
        assert r.returncode == 0, said
        assert "http True" in r.stdout, said
        assert "localhost 127.0.0.1 b'ping' 127.0.0.1 127.0.0.1" in r.stdout, said
        assert "v6 b'six' ::1" in r.stdout, said
        assert "udp b'dgram' 127.0.0.1" in r.stdout, said
        with PcapReader(pcap) as rd:
            ips = [ip for rec in rd if (ip := ip_packet(rec)) is not None]
        loop4 = [ip for ip in ips if ip[0] >> 4 == 4 and 127 in (ip[12], ip[16])]
        loop6 = [ip for ip in ips if ip[0] >> 4 == 6
                 and bytes(15) + b"\x01" in (bytes(ip[8:24]), bytes(ip[24:40]))]
        assert not loop4 and not loop6, f"loopback packets on the link: {loop4 + loop6}"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@live
@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
def test_synack_ping_loopback_is_answered_inside(target: str) -> None:
    ns = f"sa-pinglo-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        r = subprocess.run([sys.executable, "-m", "synack.cli", "ping", "--netns", ns,
                            "-c", "2", "-i", "0.2", target], capture_output=True, text=True,
                           env=env, timeout=60, check=False)
        assert r.returncode == 0 and "2 packets transmitted, 2 received" in r.stdout, \
            f"{r.stdout}\n{r.stderr}"
        assert f"from {target}" in r.stdout, r.stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
