"""A script's shell commands, understood without a shell, for the simulated target.

Scripts (and ``../common/defaults.sh``, which they run first) change the kernel
with a few kinds of command; in simulation each is read, not run:

- ``sysctl [-q] [-w] NAME=VALUE...``, ``echo VALUE > /proc/sys/...`` and
  ``set_sysctls.py /proc/sys/...=VALUE...`` set synack's sysctl of that name;
  ``echo VALUE > /sys/module/tcp_cubic/parameters/NAME`` sets ``tcp_cubic.NAME``;
- ``.../defaults.sh`` is read (relative to the script's directory) line by line;
- ``ip tcp_metrics flush`` empties the Fast Open cookie cache (the only route
  metric synack keeps);
- harmless for a simulated host, hence ignored: ``tc qdisc add|replace ...
  pfifo|pfifo_fast`` (synack sends in FIFO order), ``ethtool -K DEV FEATURE off...``
  (synack's simulated link already carries segments of one MSS), and the
  ``/tmp/sysctl_restore_*.sh`` cleanup (each run has its own host);
- ``nstat`` with its output discarded starts nstat's history; ``nstat | grep NAME``
  succeeds when counter NAME moved since (what the kernel's nstat would print);
- ``grep`` pipelines over ``/proc/net/tcp`` (:mod:`synack.drill.sim_proc`);
- ``rm -f PATH`` and ``dd if=/dev/zero of=PATH bs=N count=M`` act on the simulated
  host's own files (in memory), which ``open()`` and ``sendfile()`` read;
- anything else is ``unsupported: ...`` and fails the script.

A sysctl synack does not have is ignored inside ``defaults.sh`` (it sets many
that are about features synack lacks; ``-v`` lists them) and is unsupported in a
script's own commands, which set one only when the test depends on it -- unless
the value is what synack does anyway (:data:`FIXED`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

from synack.config import KNOBS, Sysctl, SysctlError
from synack.drill.sim_proc import grep_pipeline

# Sysctls synack does not have, with the values that describe what it does anyway
# (no ECN, no MTU probing, cwnd restart after idle as RFC 5681 4.1,
# exponential SYN backoff from the first retry as RFC 6298 5.5):
# setting one of these is a no-op, any other value is unsupported.
FIXED: dict[str, frozenset[str]] = {
    "net.ipv4.tcp_mtu_probing": frozenset({"0"}),
    "net.ipv4.tcp_min_tso_segs": frozenset({"2"}),     # Linux's default, as synack sizes TSO
    "net.ipv4.tcp_slow_start_after_idle": frozenset({"1"}),
    "net.ipv4.tcp_syn_linear_timeouts": frozenset({"0"}),   # SYN RTOs double from the first
}
_ARITH = re.compile(r"\$\(\(([0-9+\-*/ ()]+)\)\)")
_PROC = "/proc/sys/"
_CUBIC = "/sys/module/tcp_cubic/parameters/"


class Shell:
    """Applies commands to ``cfg``; ``notes`` records what was ignored."""

    def __init__(self, cfg: Sysctl, script_dir: Path,
                 proc: Callable[[], dict[str, list[str]]] | None = None,
                 metrics_flush: Callable[[], None] | None = None,
                 counters: Callable[[], dict[str, int]] | None = None) -> None:
        self.cfg = cfg
        self.dir = script_dir
        self.proc = proc                        # /proc/net/tcp of the simulated host
        self.metrics_flush = metrics_flush   # `ip tcp_metrics flush`: the Fast Open cache
        self.counters = counters             # the host's nstat counters
        self.nstat_seen: dict[str, int] = {}  # what the last `nstat` showed (its history)
        self.notes: list[str] = []
        self.files: dict[str, bytes] = {}     # what rm and dd made or removed

    def run(self, command: str, *, init: bool = False) -> str | None:
        """None on success, else the reason (``unsupported: ...`` or a sysctl error)."""
        text = command.replace("\\\n", " ")
        text = _ARITH.sub(lambda m: str(_arith(m.group(1))), text)
        text = text.replace("${PPID}", "0").replace("$PPID", "0")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"\s*(?:&&|;)\s*", line):
                if part:
                    err = self.simple(part, init)
                    if err:
                        return err
        return None

    def simple(self, cmd: str, init: bool) -> str | None:
        quiet = re.sub(r"\s*(?:[12]?>\s*/dev/null|2>&1)\s*", " ", cmd).strip()
        try:
            words = shlex.split(quiet)
        except ValueError as exc:
            return f"unsupported: cannot read command {cmd!r}: {exc}"
        if not words:
            return None
        prog = words[0].rsplit("/", 1)[-1]
        if prog == "grep" and self.proc is not None:
            return grep_pipeline(quiet, self.proc)
        if prog == "defaults.sh":
            return self.defaults(words[0])
        if prog == "set_sysctls.py":
            return self.assign_all([w.removeprefix(_PROC)
                                    for w in words[1:]], init, cmd)
        if prog == "sysctl":
            return self.assign_all([w for w in words[1:] if not w.startswith("-")], init, cmd)
        if prog == "echo" and ">" in quiet:
            value, _, target = quiet[len("echo"):].partition(">")
            target = target.strip()
            if target.startswith(_PROC):
                return self.assign_all([f"{target[len(_PROC):]}={value.strip().strip(chr(34))}"],
                                       init, cmd)
            if target.startswith(_CUBIC):        # a module parameter, kept as tcp_cubic.NAME
                name = "tcp_cubic." + target[len(_CUBIC):]
                return self.assign_all([f"{name}={value.strip().strip(chr(34))}"], init, cmd)
            return f"unsupported: {cmd.strip()!r} in simulation"
        if prog.startswith("sysctl_restore_"):
            return None
        if words[:3] == ["ip", "tcp_metrics", "flush"]:
            if self.metrics_flush is not None:
                self.metrics_flush()
            return None
        if prog == "tc" and len(words) >= 2 and words[1] == "qdisc" and \
                words[-1] in ("pfifo", "pfifo_fast"):
            return None
        if prog == "nstat" and quiet != cmd.strip() and "|" not in cmd:
            self._nstat_delta()
            return None
        grep = re.fullmatch(r"nstat\s*\|\s*grep\s+(\w+)", quiet)
        if grep and self.counters is not None:
            # nstat prints the counters that moved since its last run; grep succeeds
            # when the one named is among them.
            if self._nstat_delta().get(grep.group(1)):
                return None
            return f"{grep.group(1)} did not change (nstat | grep found nothing)"
        if prog == "rm" and words[1:2] == ["-f"] and len(words) > 2:
            for path in words[2:]:
                self.files.pop(path, None)
            return None
        if prog == "dd":
            return self.dd(words[1:], cmd)
        if prog == "ethtool" and len(words) > 3 and words[1] == "-K" and \
                all(w == "off" for w in words[4::2]) and len(words) % 2 == 1:
            return None
        return f"unsupported: shell command {cmd.strip()!r} in simulation"

    def _nstat_delta(self) -> dict[str, int]:
        now = self.counters() if self.counters is not None else {}
        delta = {k: v - self.nstat_seen.get(k, 0) for k, v in now.items()}
        self.nstat_seen = now
        return delta
    def dd(self, args: list[str], cmd: str) -> str | None:
        """``dd bs=N count=M if=/dev/zero of=PATH``: a file of N*M zero bytes, kept in
        ``files`` (the simulated host's own; nothing is written to the real disk)."""
        kv = dict(a.partition("=")[::2] for a in args)
        if kv.get("if") != "/dev/zero" or "of" not in kv or set(kv) - {
                "bs", "count", "if", "of", "status"}:
            return f"unsupported: shell command {cmd.strip()!r} in simulation"
        try:
            size = int(kv.get("bs", "512")) * int(kv.get("count", "1"))
        except ValueError:
            return f"unsupported: shell command {cmd.strip()!r} in simulation"
        self.files[kv["of"]] = bytes(size)
        return None

    def defaults(self, path: str) -> str | None:
        file = (self.dir / path).resolve()
        if not file.is_file():
            self.notes.append(f"{path} not found: synack's Linux defaults stay")
            return None
        body = file.read_text(errors="replace")
        return self.run(body, init=True)

    def assign_all(self, assignments: list[str], init: bool, cmd: str) -> str | None:
        for a in assignments:
            name, sep, value = a.partition("=")
            if not sep:
                continue
            name = name.strip().replace("/", ".")
            value = value.strip().strip('"')
            if name not in KNOBS:
                if value in FIXED.get(name, ()):
                    continue
                if init:
                    self.notes.append(f"ignored sysctl {name}={value} (not in synack)")
                    continue
                return f"unsupported: sysctl {name} (synack does not have it)"
            try:
                self.cfg.set(name, value)
            except SysctlError as exc:
                return f"sysctl: {exc}"
        return None


def _arith(expr: str) -> int:
    """``$((15*1024*1024))``: integer arithmetic of digits and + - * / only."""
    tokens = re.findall(r"\d+|[+\-*/()]", expr)
    pos = 0

    def atom() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            v = add()
            pos += 1
            return v
        if tok == "-":
            return -atom()
        return int(tok)

    def mul() -> int:
        nonlocal pos
        v = atom()
        while pos < len(tokens) and tokens[pos] in "*/":
            op = tokens[pos]
            pos += 1
            v = v * atom() if op == "*" else v // atom()
        return v

    def add() -> int:
        nonlocal pos
        v = mul()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            v = v + mul() if op == "+" else v - mul()
        return v
    return add()
