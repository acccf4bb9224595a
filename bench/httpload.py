"""HTTP rows (issue 8): ``ab`` against ``synack serve http`` and against nginx, same namespace.

* ``ab -k -c 50``: requests per second over keep-alive connections, for a
  small body (``/bytes/N`` from synack; a static file of N bytes from nginx);
* ``ab -c 500`` without keep-alive: a connection per request, 500 at a time;
  the figure is the number of SYNs the client kernel retransmitted meanwhile
  (``nstat TcpExtTCPSynRetrans`` in the namespace, a delta). A server that
  keeps up with the SYNs answers each at once: none is retransmitted.

nginx is Debian's, run by us with one worker, a config written to a temporary
directory (pid, logs and temp files there too), listening on the namespace's
own address only, and stopped after: never the system service.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from labs import (
    KERNEL_IP,
    SYNACK_IP,
    TAG,
    in_ns,
    need,
    netns,
    run_bounded,
    stop,
    synack_serve,
    wait_listening_in,
)
from table import Figure

PORT = 80
KEYS = ("keepalive", "synretrans")

NGINX_CONF = """\
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {addr}:{port} backlog=4096;
        root {tmp}/www;
    }}
}}
"""


def _ab(ns: str, args: list[str], url: str, bound: float) -> tuple[float, str]:
    """Run ab in ``ns``; (requests per second, a note on failed or missing requests)."""
    out = run_bounded(in_ns(ns, "ab", "-q", "-s", "30", *args, url), bound, "ab")
    rps = re.search(r"Requests per second:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError("ab printed no 'Requests per second'")
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    done = re.search(r"Complete requests:\s+(\d+)", out)
    note = ""
    if failed and int(failed.group(1)):
        note = f"ab {' '.join(args)} {url}: {failed.group(1)} of " \
               f"{done.group(1) if done else '?'} requests failed"
    return float(rps.group(1)), note


def _syn_retrans(ns: str) -> int:
    out = run_bounded(in_ns(ns, "nstat", "-asz", "TcpExtTCPSynRetrans"), 10, "nstat")
    for line in out.splitlines():
        if line.startswith("TcpExtTCPSynRetrans"):
            return int(line.split()[1])
    raise RuntimeError("nstat: no TcpExtTCPSynRetrans")


def _keepalive(ns: str, url: str, n: int, bound: float) -> Figure:
    try:
        rps, note = _ab(ns, ["-k", "-c", "50", "-n", str(n)], url, bound)
        return Figure([rps], note=note)
    except (OSError, RuntimeError) as exc:
        return Figure([], f"ab -k -c 50 {url}: {exc}")


def _burst(ns: str, url: str, n: int, bound: float) -> Figure:
    """SYNs retransmitted by the client kernel during ``ab -c 500 -n n``."""
    try:
        before = _syn_retrans(ns)
        note = ""
        try:
            _rps, note = _ab(ns, ["-c", "500", "-n", str(n)], url, bound)
        except (OSError, RuntimeError) as exc:
            note = f"ab -c 500 {url}: {exc}"     # the SYNs it caused still count
        return Figure([float(_syn_retrans(ns) - before)], lower_better=True, note=note)
    except (OSError, RuntimeError, ValueError) as exc:
        return Figure([], f"ab -c 500 {url}: {exc}", lower_better=True)


def http_figures(size: int, n_keepalive: int, n_burst: int, bound: float
                 ) -> dict[str, dict[str, Figure]]:
    """``{"synack": {key: Figure}, "nginx": {...}}`` for KEYS; n/a figures say why."""
    tmp = ""
    try:
        need("ip", "iproute2")
        need("nstat", "iproute2")
        need("ab", "apache2-utils")
        need("nginx", "nginx")
        tmp = tempfile.mkdtemp(prefix="sa-bench-nginx")
        os.mkdir(os.path.join(tmp, "www"))
        with open(os.path.join(tmp, "www", "f"), "wb") as f:
            f.write(os.urandom(size))
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, addr=KERNEL_IP, port=PORT))
        ns = f"{TAG}-h"
        with netns(ns), synack_serve(ns, "http", PORT):
            nginx = subprocess.Popen(
                in_ns(ns, "nginx", "-p", tmp, "-e", os.path.join(tmp, "error.log"),
                      "-c", conf, "-g", "daemon off;"),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
            try:
                try:
                    wait_listening_in(ns, PORT, 20)
                except RuntimeError:
                    stop(nginx)
                    err = (nginx.stderr.read() if nginx.stderr else "").strip().splitlines()
                    raise RuntimeError(f"nginx did not start: {err[-1] if err else '?'}"
                                       ) from None
                urls = {"nginx": f"http://{KERNEL_IP}:{PORT}/f",
                        "synack": f"http://{SYNACK_IP}:{PORT}/bytes/{size}"}
                out: dict[str, dict[str, Figure]] = {who: {} for who in urls}
                for who, url in urls.items():
                    out[who]["keepalive"] = _keepalive(ns, url, n_keepalive, bound)
                for who, url in urls.items():
                    out[who]["synretrans"] = _burst(ns, url, n_burst, bound)
                return out
            finally:
                stop(nginx)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        why = f"HTTP lab failed: {exc}"
        return {who: {k: Figure([], why, lower_better=k == "synretrans") for k in KEYS}
                for who in ("synack", "nginx")}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
