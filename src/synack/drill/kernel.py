"""The Linux kernel as a drill target: packetdrill's local mode, in Python.

``synack drill --kernel`` runs each script in a new, anonymous network namespace
(:func:`make_target` moves the command's thread into it), so the script's devices,
sockets and sysctls exist only there. Nothing has a name to delete: the namespace
vanishes when nothing uses it any more -- at the next script, or when the process
ends, after a pass, a failure, ctrl-C or a SIGKILL alike. In it,
:class:`KernelTarget` is the :class:`synack.drill.target.Target`:

* the wire is ``tun0`` (:class:`synack.drill.kernel_net.TunWire`): an inbound packet
  is written to it, outbound packets are read from a packet socket on it with the
  kernel's timestamps;
* system calls are real (:class:`synack.drill.kernel_calls.KernelCalls`), each made on
  a worker thread. As packetdrill does (``enqueue_system_call``), the main thread
  waits until the call has either returned or is asleep in the kernel; a call asleep
  is "blocked" and its end is collected later by :meth:`KernelTarget.blocked`;
* backquoted shell lines run for real, in the namespace, from the script's directory
  (so ``../common/defaults.sh`` and its sysctls apply to this namespace only);
* time is the wall clock, in microseconds from the runner's time 0, with packetdrill's
  aids to punctuality: real-time scheduling, locked memory, a jiffy-aligned start,
  sleeping until just before an event and spinning the rest.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from synack.drill.kernel_calls import KernelCalls
from synack.drill.kernel_net import TunWire, enter_fresh_netns
from synack.drill.target import SysCall, SyscallResult, TargetConfig

if TYPE_CHECKING:
    from synack.drill.runner import RunOptions

__all__ = ["NEEDS_ROOT", "KernelTarget", "is_root", "make_target"]

NEEDS_ROOT = "synack drill --kernel needs root"

# The futex syscall, where a thread waiting for the GIL or a lock sleeps: a worker
# asleep there has not reached its socket call yet. (arch/x86/entry/syscalls, asm-generic)
_FUTEX_NR = {"x86_64": 202, "aarch64": 98, "arm64": 98, "riscv64": 98}.get(platform.machine(), 202)
_SETTLE_S = 0.0005          # two looks this far apart must both see the call asleep
_SHELL_TIMEOUT_S = 120
_WORKERS = 2               # threads ready for calls: one may block while another runs
_SPIN_US = 200              # sleep until this close to an event's time, then spin
_JIFFY_OFFSET_US = 250      # run.c schedule_start_time_usecs: start this far into a jiffy
_MCL_CURRENT_FUTURE = 3     # mlockall(MCL_CURRENT | MCL_FUTURE)
_realtime_done = False


def is_root() -> bool:
    """Whether this process may make namespaces and TUN devices."""
    return os.geteuid() == 0


def _realtime() -> None:
    """packetdrill's ``set_scheduling_priority`` and ``lock_memory``: SCHED_RR at the lowest
    real-time priority (threads made later inherit it) when there is more than one CPU,
    and every page locked in RAM, so a busy machine delays the script's events less.
    Best effort: a refusal leaves the normal policy."""
    global _realtime_done
    if _realtime_done:
        return
    _realtime_done = True
    if (os.cpu_count() or 1) > 1:
        try:
            prio = os.sched_get_priority_min(os.SCHED_RR)
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(prio))
        except OSError:
            pass
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).mlockall(_MCL_CURRENT_FUTURE)
    except OSError:
        pass


def _jiffy_aligned_now_us() -> int:
    """packetdrill's ``schedule_start_time_usecs``: start a little after a tick of the
    jiffies clock, so the kernel's RTT samples (kept in jiffies) do not land on a tick
    edge and come out one jiffy off at random.

    packetdrill spins through ten ticks of ``times(2)``; spinning 100 ms at real-time
    priority would starve the rest of a busy machine, so this finds one tick coarsely
    (sampling every half millisecond), sleeps until just before the next one
    (``times(2)`` ticks every 1/CLK_TCK s) and spins only for that last stretch.
    """
    tick_us = 1_000_000 // os.sysconf("SC_CLK_TCK")
    last = os.times().elapsed
    while os.times().elapsed == last:
        time.sleep(0.0005)
    edge = TunWire.now_us()
    time.sleep(max(tick_us - 1500, 0) / 1e6)
    last = os.times().elapsed
    deadline = edge + 2 * tick_us
    while os.times().elapsed == last and TunWire.now_us() < deadline:
        pass
    start = TunWire.now_us() + _JIFFY_OFFSET_US
    while TunWire.now_us() < start:
        pass
    return start


# ------------------------------------------------------------------ worker threads
class _Job:
    __slots__ = ("call", "done", "end_us", "error", "fn", "result", "started")

    def __init__(self, call: SysCall, fn: Callable[[SysCall], SyscallResult]) -> None:
        self.call = call
        self.fn = fn
        self.started = False
        self.done = threading.Event()
        self.result: SyscallResult | None = None
        self.error: BaseException | None = None
        self.end_us = 0


class _Worker:
    """A thread that makes one call at a time; its kernel thread id lets us look at it."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._job: _Job | None = None
        self._stop = False
        self.tid = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                       name="drill-syscall")
        self.thread.start()
        ready.wait()

    @property
    def busy(self) -> bool:
        return self._job is not None

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._job = job
            self._lock.notify()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()

    def _run(self, ready: threading.Event) -> None:
        self.tid = threading.get_native_id()
        ready.set()
        while True:
            with self._lock:
                while self._job is None and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                job = self._job
            assert job is not None
            job.started = True
            try:
                job.result = job.fn(job.call)
            except BaseException as exc:  # noqa: BLE001 -- handed to the main thread
                job.error = exc
            job.end_us = TunWire.now_us()
            with self._lock:
                self._job = None
            job.done.set()

    def asleep_in_kernel(self) -> int | None:
        """The syscall number this thread sleeps in, unless it is running or on a futex."""
        base = f"/proc/self/task/{self.tid}/"
        try:
            with open(base + "stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(base + "syscall") as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            return None
        if state not in ("S", "D") or not nr.lstrip("-").isdigit() or int(nr) in (_FUTEX_NR, -1):
            return None
        return int(nr)


# ------------------------------------------------------------------ the target
class KernelTarget:
    """The kernel's TCP behind ``tun0`` in the current namespace (see the module docstring).

    The calling thread must already be in a namespace of its own (:func:`make_target`).
    ``gso_size``: injected TCP packets are marked as GRO aggregates of that MSS
    (packetdrill's ``--mss``), so one larger than the MTU is taken whole.
    """

    def __init__(self, config: TargetConfig, *, gso_size: int = 0, bind_port: int = 8080,
                 connect_port: int = 8080) -> None:
        self.config = config
        self.gso_size = gso_size
        self.cwd = os.path.dirname(os.path.abspath(config.script_path)) if config.script_path \
            else os.getcwd()
        self.wire = TunWire(config.local_ip, config.remote_ip, mtu=config.mtu)
        # --ip_version=ipv4-mapped-ipv6: IPv4 on tun0, the calls' addresses IPv4-mapped
        # (packetdrill's live_bind_ip/live_connect_ip), so the sockets are AF_INET6.
        local, remote = ((f"::ffff:{config.local_ip}", f"::ffff:{config.remote_ip}")
                         if config.mapped else (config.local_ip, config.remote_ip))
        self.calls = KernelCalls(local, remote, cwd=self.cwd,
                                 bind_port=bind_port, connect_port=connect_port)
        self.calls.origin_us = self._origin
        self._pending: _Job | None = None
        self._closed = False
        self._start_us: int | None = None
        _realtime()
        # Threads made now, before time 0: starting one (its stack locked by mlockall)
        # costs milliseconds, too much for a script's first call or a call made while
        # another blocks.
        self._workers: list[_Worker] = [_Worker() for _ in range(_WORKERS)]

    # -- time ------------------------------------------------------------------
    def _origin(self) -> int:
        if self._start_us is None:
            # The runner's first look at the clock is its time 0 (after the init
            # command): that is when packetdrill picks its jiffy-aligned start.
            self._start_us = _jiffy_aligned_now_us()
        return self._start_us

    def now_us(self) -> int:
        origin = self._origin()                # first: the first call may spin a while
        return TunWire.now_us() - origin

    def advance_to(self, t_us: int) -> None:
        # run.c wait_for_event: sleep until just before the time, then spin.
        while True:
            left = t_us - self.now_us()
            if left <= 0:
                return
            if left > _SPIN_US:
                time.sleep((left - _SPIN_US) / 1e6)

    # -- the wire --------------------------------------------------------------
    def inject(self, packet: bytes) -> None:
        self.wire.inject(packet, gso_size=self.gso_size if len(packet) > self.config.mtu else 0)

    def outbound(self, deadline_us: int) -> tuple[int, bytes] | None:
        origin = self._origin()
        got = self.wire.sniff(deadline_us + origin)
        if got is None:
            return None
        return got[0] - origin, got[1]

    # -- system calls ----------------------------------------------------------
    def _worker(self) -> _Worker:
        for w in self._workers:
            if not w.busy:
                return w
        w = _Worker()
        self._workers.append(w)
        return w

    def syscall(self, call: SysCall) -> SyscallResult | None:
        if self._pending is not None and self._pending.done.is_set():
            self._pending = None               # its end was not collected: forget it
        job = _Job(call, self.calls.call)
        worker = self._worker()
        worker.submit(job)
        seen: int | None = None
        while not job.done.wait(_SETTLE_S):
            nr = worker.asleep_in_kernel() if job.started else None
            if nr is not None and nr == seen:
                self._pending = job            # asleep twice in the same call: blocked
                return None
            seen = nr
        return self._finish(job)

    @staticmethod
    def _finish(job: _Job) -> SyscallResult:
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def blocked(self, deadline_us: int) -> tuple[int, SyscallResult] | None:
        job = self._pending
        if job is None:
            return None
        left = deadline_us - self.now_us()
        if not job.done.wait(max(left, 0) / 1e6):
            return None
        self._pending = None
        return job.end_us - self._origin(), self._finish(job)

    def tcp_info(self, fd: int) -> dict[str, int]:
        return self.calls.tcp_info(fd)

    # -- commands --------------------------------------------------------------
    def shell(self, command: str) -> str | None:
        env = dict(os.environ)
        env.update(self.config.defines)
        # packetdrill exports its pid; upstream's set_sysctls.py names its restore file by it.
        env["PACKETDRILL_PID"] = str(os.getpid())
        try:
            res = subprocess.run(["/bin/sh", "-c", command], cwd=self.cwd, env=env,
                                 capture_output=True, text=True, timeout=_SHELL_TIMEOUT_S,
                                 check=False)
        except subprocess.TimeoutExpired:
            return f"timed out after {_SHELL_TIMEOUT_S} s"
        if self.config.verbose and (res.stdout or res.stderr):
            sys.stderr.write(res.stdout + res.stderr)
        if res.returncode == 0:
            return None
        why = (res.stderr.strip() or res.stdout.strip()).splitlines()
        status = (f"killed by signal {-res.returncode}" if res.returncode < 0
                  else f"exit status {res.returncode}")
        return f"{status}" + (f": {why[-1]}" if why else "")

    def describe_failure(self) -> str:
        """The kernel's TCP sockets in the namespace at the failure (``ss -tanoi``)."""
        try:
            res = subprocess.run(["ss", "-tanoi"], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
        if len(lines) <= 1:
            return ""
        return "the kernel's sockets (ss -tanoi in the script's namespace):\n" + \
            "\n".join("  " + ln.strip() for ln in lines)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Wake any call still asleep (shutdown ends accept/recv), then close everything.
        for entry in list(self.calls.fds.values()):
            if entry.sock is not None:
                try:
                    entry.sock.shutdown(2)
                except OSError:
                    pass
        self.calls.close_all()
        for w in self._workers:
            w.stop()
        self.wire.close()


# ------------------------------------------------------------------ the factory
def make_target(config: TargetConfig, opts: RunOptions) -> KernelTarget:
    """The session's target factory for ``--kernel``: a fresh namespace, then the target.

    It moves the calling thread (the command's main thread) into a new, anonymous
    network namespace, one per script: the previous script's namespace goes away with
    its devices, sockets and threads, and the last one with the process, however the
    process ends. ctrl-C or SIGTERM then end the process at once with one line (the
    kernel frees the rest). Without root it says so in one line and exits with status 2.
    """
    if not is_root():
        sys.stdout.flush()
        sys.stderr.write(NEEDS_ROOT + "\n")
        raise SystemExit(2)
    enter_fresh_netns()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted)
        signal.signal(signal.SIGTERM, _interrupted)
    return KernelTarget(config, bind_port=opts.bind_port, connect_port=opts.connect_port)


def _interrupted(signum: int, frame: object) -> None:
    """ctrl-C or SIGTERM during a kernel run: one line, then exit (no traceback)."""
    try:
        sys.stdout.flush()
        sys.stderr.write("synack drill --kernel: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)
