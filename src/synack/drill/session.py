"""One script file, start to end: options, parse, target, run.

This is what ``synack drill`` and ``make conformance`` call for each script. The
options come from three places, later ones winning: the defaults (packetdrill's),
the script's own header (``--tolerance_usecs=10000`` lines at the top), and the
command line. ``-D NAME=VALUE`` symbols replace words of the script.

A target is made by a factory ``(TargetConfig, RunOptions) -> Target``:
:func:`sim_factory` for synack; the kernel target supplies its own
(``synack.drill.kernel.make_target``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from synack.drill import ast
from synack.drill.lexer import DrillSyntaxError
from synack.drill.parse import parse_file
from synack.drill.runner import Outcome, Runner, RunOptions
from synack.drill.target import Target, TargetConfig, Unsupported

# Options a script header or the command line may give, and what they set.
_INT_OPTS = {"tolerance_usecs": "tolerance_us", "tcp_ts_tick_usecs": "ts_tick_us",
             "bind_port": "bind_port", "connect_port": "connect_port"}
_FLAG_OPTS = {"tcp_ts_ecr_scaled": "ts_ecr_scaled", "strict_segments": "strict_segments"}
# Options the runner does not use: passed on to the target (TargetConfig.options), which
# may use them (the kernel target: addresses of its device) or not (the simulator).
TARGET_OPTS = frozenset(("send_omit_free", "gateway_ip", "netmask_ip", "speed", "non_fatal",
                         "dry_run", "verbose", "so_filename", "so_flags", "code_command",
                         "code_format", "code_sockopt", "mss", "init_scripts", "define"))

TargetFactory = Callable[[TargetConfig, RunOptions], Target]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the command line says (None: not given)."""

    tolerance_us: int | None = None
    tolerance_percent: float | None = None
    local_ip: str | None = None
    remote_ip: str | None = None
    mtu: int | None = None
    ip_version: str | None = None
    defines: Mapping[str, str] = field(default_factory=dict)
    init_scripts: tuple[str, ...] = ()
    extra: Mapping[str, str | None] = field(default_factory=dict)
    verbose: bool = False


class OptionError(ValueError):
    """A bad option value (one line, with file:line when it comes from a script)."""


def _apply(opts: RunOptions, tcfg: TargetConfig, name: str, value: str | None,
           where: str) -> tuple[RunOptions, TargetConfig]:
    try:
        if name in _INT_OPTS:
            return replace(opts, **{_INT_OPTS[name]: int(value or "", 0)}), tcfg  # type: ignore[arg-type]
        if name in _FLAG_OPTS:
            flag = value in (None, "", "1", "true")
            return replace(opts, **{_FLAG_OPTS[name]: flag}), tcfg  # type: ignore[arg-type]
        if name == "tolerance_percent":
            return replace(opts, tolerance_percent=float(value or "")), tcfg
        if name == "local_ip":
            ip = _canonical_ip(str(value))
            return replace(opts, local_ip=ip), replace(tcfg, local_ip=ip)
        if name == "remote_ip":
            ip = _canonical_ip(str(value))
            return replace(opts, remote_ip=ip), replace(tcfg, remote_ip=ip)
        if name == "mtu":
            return opts, replace(tcfg, mtu=int(value or "", 0))
        if name == "ip_version":
            return _ip_version(opts, replace(tcfg, mapped=value == MAPPED), str(value), where)
    except ValueError as exc:
        if isinstance(exc, OptionError):
            raise
        raise OptionError(f"{where}: bad --{name}: {value!r}") from None
    if name in TARGET_OPTS:
        return opts, replace(tcfg, options=(*tcfg.options, (name, value)))
    raise OptionError(f"{where}: unsupported: option --{name}")


IPV6_LOCAL, IPV6_REMOTE = "2001:db8::2", "2001:db8::1"   # --ip_version=ipv6 defaults
MAPPED = "ipv4-mapped-ipv6"
IP_VERSIONS = ("ipv4", "ipv6", MAPPED)


def _ip_version(opts: RunOptions, tcfg: TargetConfig, value: str,
                where: str) -> tuple[RunOptions, TargetConfig]:
    """``--ip_version``: ipv4, ipv6, or ipv4-mapped-ipv6 (packetdrill's three modes).

    ipv4-mapped-ipv6 keeps IPv4 on the wire and makes the script's sockets AF_INET6,
    whose calls see the addresses IPv4-mapped (``::ffff:192.0.2.1``); its addresses
    must be IPv4 ones, as packetdrill's are in that mode.
    """
    if value not in IP_VERSIONS:
        raise OptionError(f"{where}: unsupported: --ip_version={value} "
                          f"({', '.join(IP_VERSIONS[:-1])} or {IP_VERSIONS[-1]})")
    if value == "ipv6" and ":" not in opts.local_ip:
        # packetdrill's IPv6 mode with its own defaults; here documentation addresses.
        return (replace(opts, local_ip=IPV6_LOCAL, remote_ip=IPV6_REMOTE),
                replace(tcfg, local_ip=IPV6_LOCAL, remote_ip=IPV6_REMOTE))
    return opts, tcfg


def _canonical_ip(text: str) -> str:
    """An address as the stack spells it (inet_ntop for IPv6); ValueError if not one."""
    ip = ipaddress.ip_address(text)
    return socket.inet_ntop(socket.AF_INET6, ip.packed) if ip.version == 6 else str(ip)


def configure(script: ast.Script, s: Settings) -> tuple[RunOptions, TargetConfig]:
    """Defaults, then the script's header, then the command line."""
    opts = RunOptions()
    tcfg = TargetConfig(script_path=script.path, init_command=script.init_command,
                        defines=tuple(s.defines.items()), verbose=s.verbose)
    for name, value in script.options:
        opts, tcfg = _apply(opts, tcfg, name, value, f"{script.path}:1")
    cli: list[tuple[str, str | None]] = list(s.extra.items())
    for name, val in (("tolerance_usecs", s.tolerance_us), ("tolerance_percent",
                      s.tolerance_percent), ("local_ip", s.local_ip), ("remote_ip", s.remote_ip),
                      ("mtu", s.mtu), ("ip_version", s.ip_version)):
        if val is not None:
            cli.append((name, str(val)))
    for name, value in cli:
        opts, tcfg = _apply(opts, tcfg, name, value, "command line")
    if tcfg.mapped and (":" in opts.local_ip or ":" in opts.remote_ip):
        raise OptionError(f"{script.path}:1: --ip_version={MAPPED} needs IPv4 addresses, not "
                          f"--local_ip={opts.local_ip} --remote_ip={opts.remote_ip}")
    return opts, tcfg


# Options that change what the kernel target does and that the simulation cannot
# honour: a script that needs one is unsupported in simulation.
_SIM_UNSUPPORTED = {"mss": "--mss (inbound packets as GSO packets of that size)"}


def sim_factory(tcfg: TargetConfig, opts: RunOptions) -> Target:
    """A synack host on a virtual clock."""
    from synack.drill.sim_target import SimTarget
    for name, _value in tcfg.options:
        if name in _SIM_UNSUPPORTED:
            raise Unsupported(f"unsupported: {_SIM_UNSUPPORTED[name]} in simulation")
    return SimTarget(tcfg, bind_port=opts.bind_port, connect_port=opts.connect_port)


def run_file(path: str | Path, settings: Settings, factory: TargetFactory = sim_factory,
             log: Callable[[str], None] | None = None) -> Outcome:
    """Parse and run one script; every failure (syntax included) is an Outcome."""
    try:
        script = parse_file(path, settings.defines)
        opts, tcfg = configure(script, settings)
    except DrillSyntaxError as exc:
        return Outcome(str(path), False, str(exc), exc.reason.startswith("unsupported"))
    except OptionError as exc:
        return Outcome(str(path), False, f"{exc}", "unsupported" in str(exc))
    try:
        target = factory(tcfg, opts)
    except Unsupported as exc:
        return Outcome(str(path), False, f"{path}:1: error: {exc}", True)
    try:
        for init in settings.init_scripts:
            err = target.shell(init)
            if err:
                return Outcome(str(path), False, f"{path}: error executing init script "
                                                 f"{init}: {err}", err.startswith("unsupported"))
        return Runner(script, target, opts, log).run()
    finally:
        target.close()
