"""Real libraries, unmodified, under ``synack run``: every transfer checked by sha256.

Each test makes a namespace, starts the kernel's side there (a server, or curl as
the client), and runs a small program in a fresh process with ``synack run
--netns``: synack is on a TAP into that namespace and the program's ``socket``
is synack's. The kernel's servers listen only inside the namespace and the
program's servers only on synack's address, so a library that quietly used a
kernel socket could reach neither and the test fails rather than passes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synack.trace.capture import read_capture

ROOT = Path(__file__).resolve().parent.parent
KERNEL, SYNACK = "192.0.2.1", "192.0.2.2"
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="synack run --netns needs root and /dev/net/tun")
_seq = itertools.count()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Bench:
    """One namespace, the kernel's processes in it, and ``synack run`` programs on it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ns = f"sa-run-{os.getpid()}-{next(_seq)}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1",
                        SYNACK_RUN_DIR=str(tmp / "run"))
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.nsexec("ip", "link", "set", "lo", "up")
        self.www = tmp / "www"
        self.www.mkdir()
        self.blob = os.urandom(2_000_000)
        self.pcap = tmp / "run.pcap"
        (self.www / "blob").write_bytes(self.blob)

    def nsexec(self, *cmd: str, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True,
                              timeout=timeout, check=False)

    def kernel(self, *cmd: str, port: int) -> subprocess.Popen[bytes]:
        """Start a kernel-side server in the namespace; return once ``port`` listens."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, *cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(p)
        end = time.monotonic() + DEADLINE_S
        while f":{port} " not in self.nsexec("ss", "-ltnH").stdout.decode():
            if p.poll() is not None or time.monotonic() > end:
                out = p.communicate(timeout=5)[0] if p.poll() is not None else b"(running)"
                raise AssertionError(f"{cmd} did not listen on {port}: {out.decode()}")
            time.sleep(0.05)
        return p

    def program(self, code: str, *args: str) -> Path:
        path = self.tmp / f"prog{next(_seq)}.py"
        path.write_text(textwrap.dedent(code))
        return path

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """``synack run --netns NS -- python ...`` in a fresh process."""
        p = subprocess.Popen([sys.executable, "-m", "synack.cli", "run", "--netns", self.ns,
                              "--pcap", str(self.pcap), "--", "python", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env, cwd=self.tmp)
        self.procs.append(p)
        return p

    def run(self, argv: list[str]) -> str:
        """Run a program to its end; its stdout. Fails with everything it printed."""
        p = self.start(argv)
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        assert p.returncode == 0, f"exit {p.returncode}\n{out.decode()}\n{err.decode()}"
        return out.decode()

    def carried(self, port: int | None, conns: int, *, sender: str = KERNEL) -> None:
        """The capture of the last program shows at least ``conns`` connections with
        ``port`` at one end (None: any connection) and the blob's worth of bytes from
        ``sender``'s end of them: synack carried the transfer (a kernel socket would
        not appear in synack's capture)."""
        cap = read_capture(self.pcap)
        mine = [c for c in cap.connections
                if port is None or port in (c.endpoint(0)[1], c.endpoint(1)[1])]
        sent = sum(c.payload_bytes(0 if c.endpoint(0)[0] == sender else 1) for c in mine)
        assert len(mine) >= conns and sent >= len(self.blob), (
            f"{len(mine)} connections on port {port}, {sent} bytes from {sender}; "
            f"in the capture: {[(c.endpoint(0), c.endpoint(1)) for c in cap.connections]}")

    def curl(self, url: str, server: subprocess.Popen[bytes], *opts: str) -> bytes:
        """Kernel curl in the namespace, retried until synack's ``server`` answers."""
        end = time.monotonic() + DEADLINE_S
        while True:
            r = self.nsexec("curl", "-sS", "--fail", "-m", "30", *opts, url)
            if r.returncode == 0:
                return r.stdout
            if server.poll() is not None or time.monotonic() > end:
                if server.poll() is None:
                    server.kill()
                out, err = server.communicate()
                raise AssertionError(f"curl {url}: {r.returncode} {r.stderr.decode()}\n"
                                     f"the program printed:\n{out.decode()}\n{err.decode()}")
            time.sleep(0.1)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        yield b
    finally:
        b.close()


def _http_server(bench: Bench, port: int = 8000) -> None:
    """The kernel's http.server inside the namespace, serving bench.www."""
    bench.kernel(sys.executable, "-m", "http.server", "--bind", "0.0.0.0", str(port),
                 "--directory", str(bench.www), port=port)


def _finish(bench: Bench, p: subprocess.Popen[bytes], *, sig: int | None = None) -> str:
    if sig is not None:
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"did not end\n{out.decode()}\n{err.decode()}") from None
    assert p.returncode == 0, f"exit {p.returncode}\n{out.decode()}\n{err.decode()}"
    return out.decode()


# ------------------------------------------------------------------ clients
def test_requests(bench: Bench) -> None:
    _http_server(bench)
    prog = bench.program(f"""
        import hashlib, requests
        with requests.Session() as s:              # two requests on one kept-alive connection
            for _ in range(2):
                r = s.get("http://{KERNEL}:8000/blob", timeout=30)
                r.raise_for_status()
                print(hashlib.sha256(r.content).hexdigest())
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob)] * 2
    bench.carried(8000, 1)


def test_urllib3(bench: Bench) -> None:
    _http_server(bench)
    prog = bench.program(f"""
        import hashlib, urllib3
        pool = urllib3.PoolManager()
        for _ in range(2):
            r = pool.request("GET", "http://{KERNEL}:8000/blob", timeout=30)
            assert r.status == 200, r.status
            print(hashlib.sha256(r.data).hexdigest())
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob)] * 2
    bench.carried(8000, 1)


def test_httpx_sync_and_async(bench: Bench) -> None:
    _http_server(bench)
    prog = bench.program(f"""
        import asyncio, hashlib, httpx
        r = httpx.get("http://{KERNEL}:8000/blob", timeout=30)
        print(hashlib.sha256(r.content).hexdigest())
        async def main():
            async with httpx.AsyncClient(timeout=30) as c:
                rs = await asyncio.gather(*[c.get("http://{KERNEL}:8000/blob") for _ in range(3)])
                for r in rs:
                    print(hashlib.sha256(r.content).hexdigest())
        asyncio.run(main())
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob)] * 4
    bench.carried(8000, 2)


def _redis_server(bench: Bench) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing (make system-deps installs it)")
    bench.kernel("redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                 "--save", "", "--appendonly", "no", "--dir", str(bench.tmp), port=6379)


def test_redis_py(bench: Bench) -> None:
    _redis_server(bench)
    prog = bench.program(f"""
        import hashlib, redis
        r = redis.Redis(host="{KERNEL}", port=6379, socket_timeout=30)
        blob = open("www/blob", "rb").read()
        assert r.ping()
        r.set("blob", blob)
        print(hashlib.sha256(r.get("blob")).hexdigest())
        p = r.pipeline()
        for i in range(100):
            p.rpush("list", i)
        p.execute()
        print(r.llen("list"))
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob), "100"]
    bench.carried(6379, 1)


def test_redis_asyncio(bench: Bench) -> None:
    _redis_server(bench)
    prog = bench.program(f"""
        import asyncio, hashlib
        import redis.asyncio as redis
        async def main():
            r = redis.Redis(host="{KERNEL}", port=6379)
            blob = open("www/blob", "rb").read()
            await r.set("blob", blob)
            got = await asyncio.gather(*[r.get("blob") for _ in range(4)])
            for g in got:
                print(hashlib.sha256(g).hexdigest())
            await r.aclose()
        asyncio.run(main())
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob)] * 4
    bench.carried(6379, 1)


def test_aiohttp_client(bench: Bench) -> None:
    _http_server(bench)
    prog = bench.program(f"""
        import asyncio, hashlib, aiohttp
        async def main():
            async with aiohttp.ClientSession() as s:
                for _ in range(2):
                    async with s.get("http://{KERNEL}:8000/blob") as r:
                        print(hashlib.sha256(await r.read()).hexdigest())
        asyncio.run(main())
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob)] * 2
    bench.carried(8000, 1)


def test_ftplib(bench: Bench) -> None:
    bench.kernel(sys.executable, "-m", "pyftpdlib", "-i", "0.0.0.0", "-p", "2121",
                 "-d", str(bench.www), "-w", port=2121)
    upload = os.urandom(1_000_000)
    (bench.tmp / "upload").write_bytes(upload)
    prog = bench.program(f"""
        import hashlib, io, ftplib
        ftp = ftplib.FTP()
        ftp.connect("{KERNEL}", 2121, timeout=30)
        ftp.login()
        buf = io.BytesIO()
        ftp.retrbinary("RETR blob", buf.write)
        print(hashlib.sha256(buf.getvalue()).hexdigest())
        with open("upload", "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        print(sorted(ftp.nlst()))
        ftp.quit()
    """)
    out = bench.run([str(prog)]).splitlines()
    bench.carried(None, 3)       # control, RETR's and STOR's data connections
    assert out[0] == _sha(bench.blob)
    assert "up.bin" in out[1]
    assert _sha((bench.www / "up.bin").read_bytes()) == _sha(upload)


# ------------------------------------------------------------------ servers
def test_http_server_module(bench: Bench) -> None:
    """``python -m http.server``, the stdlib's own module, fetched by the kernel's curl."""
    p = bench.start(["-m", "http.server", "--bind", "0.0.0.0", "8000",
                     "--directory", str(bench.www)])
    for _ in range(3):
        assert _sha(bench.curl(f"http://{SYNACK}:8000/blob", p)) == _sha(bench.blob)
    out = _finish(bench, p, sig=signal.SIGINT)
    bench.carried(8000, 3, sender=SYNACK)
    assert "Serving HTTP" in out


def test_socketserver(bench: Bench) -> None:
    prog = bench.program("""
        import socketserver
        blob = open("www/blob", "rb").read()
        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while self.rfile.readline() not in (b"\\r\\n", b"\\n", b""):
                    pass
                self.wfile.write(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(blob))
                self.wfile.write(blob)
        with socketserver.ThreadingTCPServer(("0.0.0.0", 8001), Handler) as srv:
            print("ready", flush=True)
            for _ in range(3):
                srv.handle_request()
    """)
    p = bench.start([str(prog)])
    for _ in range(3):
        assert _sha(bench.curl(f"http://{SYNACK}:8001/", p)) == _sha(bench.blob)
    _finish(bench, p)
    bench.carried(8001, 3, sender=SYNACK)


def test_aiohttp_server(bench: Bench) -> None:
    prog = bench.program("""
        import asyncio
        from aiohttp import web
        blob = open("www/blob", "rb").read()
        async def main():
            done = asyncio.Event()
            async def get_blob(request):
                return web.Response(body=blob)
            async def quit(request):
                done.set()
                return web.Response(text="bye")
            app = web.Application()
            app.add_routes([web.get("/blob", get_blob), web.get("/quit", quit)])
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", 8080).start()
            print("ready", flush=True)
            await done.wait()
            await runner.cleanup()
        asyncio.run(main())
    """)
    p = bench.start([str(prog)])
    for _ in range(3):
        assert _sha(bench.curl(f"http://{SYNACK}:8080/blob", p)) == _sha(bench.blob)
    assert bench.curl(f"http://{SYNACK}:8080/quit", p) == b"bye"
    _finish(bench, p)
    bench.carried(8080, 4, sender=SYNACK)
