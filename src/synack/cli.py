"""The ``synack`` command.

Every subcommand reports a bad argument with a one-line reason on stderr and
exits with status 2 (argparse's convention); a failed run exits with 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from synack.config import KNOBS, Sysctl, SysctlError


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Help that names each option's default, except options that have none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not the usage block
        self.exit(2, f"synack: {message}\n")


def sysctl_path() -> Path:
    """Where ``synack sysctl -w`` keeps its settings (like /etc/sysctl.conf)."""
    env = os.environ.get("SYNACK_SYSCTL_CONF")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "synack" / "sysctl.conf"


def load_sysctl(path: Path | None = None) -> Sysctl:
    """Defaults plus the saved ``NAME = VALUE`` lines."""
    cfg = Sysctl()
    path = path or sysctl_path()
    if path.exists():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    cfg.assign(line)
                except SysctlError as exc:
                    raise SysctlError(f"{path}:{lineno}: {exc}") from None
    return cfg


def _cmd_sysctl(args: argparse.Namespace) -> int:
    path = sysctl_path()
    cfg = load_sysctl(path)
    if args.reset:
        path.unlink(missing_ok=True)
        return 0
    if args.write:
        saved = {}
        if path.exists():
            for line in path.read_text().splitlines():
                name, sep, value = line.partition("=")
                if sep:
                    saved[name.strip()] = value.strip()
        for assignment in args.write:
            cfg.assign(assignment)           # raises SysctlError with the reason
            name = assignment.partition("=")[0].strip()
            saved[name] = KNOBS[name].format(cfg[name]).replace("\t", " ")
            print(cfg.format(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k} = {v}\n" for k, v in sorted(saved.items())))
        return 0
    names = args.names or [name for name, _ in cfg.items()]
    for name in names:
        if name not in KNOBS:
            raise SysctlError(f"unknown sysctl {name!r}")
        line = cfg.format(name)
        print(f"{line:<52} # {KNOBS[name].help}" if args.verbose else line)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from synack.demo.scenarios import LANGS, SCENARIOS, describe

    if args.lang not in LANGS:
        raise ValueError(f"unknown language {args.lang!r} (choose from: {', '.join(LANGS)})")
    if args.list:
        for name in SCENARIOS:
            print(f"{name:<26} {describe(name, args.lang)}")
        return 0
    if args.name not in SCENARIOS:
        raise SysctlError(
            f"unknown scenario {args.name!r} (try: synack demo --list)")
    if args.report:
        from synack.report.writer import check_output

        check_output(args.report)           # before the run: a bad path fails fast
    outcome = SCENARIOS[args.name](args.seed)
    # Scenarios pin their sysctls; the text names the saved ones it does not use.
    defaults, cfg = Sysctl(), load_sysctl()
    saved = {name: cfg.format(name).split(" = ", 1)[1].replace("\t", " ")
             for name, value in cfg.items() if value != defaults[name]}
    print(outcome.text(args.lang, saved=saved))
    if args.pcap:
        assert outcome.net is not None
        outcome.net.write_pcap(args.pcap)
        print(f"\ncapture written to {args.pcap} ({len(outcome.net.records)} packets)")
    if args.report:
        from synack.commands.report import report_from_run

        assert outcome.net is not None
        report_from_run(args.report, outcome.net.write_pcap,
                        title=f"synack demo {args.name}: {outcome.title}",
                        notes={"en": outcome.explanation.strip(),
                               "zh": (outcome.explanation_zh or outcome.explanation).strip()})
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from synack.demo.bulk import transfer
    from synack.sim import LinkParams
    from synack.units import parse_rate, parse_ratio, parse_size, parse_time_us

    nbytes = parse_size(args.bytes)
    if args.delay.strip().replace(".", "", 1).isdigit() and float(args.delay) != 0:
        # netem's own reading, but rarely what was meant: say so once.
        print(f"synack: note: --delay {args.delay} is {args.delay} ns, as tc-netem reads a bare"
              f" number; write {args.delay}ms for milliseconds", file=sys.stderr)
    link = LinkParams(
        delay_us=parse_time_us(args.delay),
        rate_bps=parse_rate(args.rate) if args.rate else None,
        loss=parse_ratio(args.loss), duplicate=parse_ratio(args.duplicate),
        reorder=parse_ratio(args.reorder), corrupt=parse_ratio(args.corrupt),
        queue_bytes=parse_size(args.queue) if args.queue else None,
        ecn_mark_bytes=parse_size(args.ecn_mark) if args.ecn_mark else None)
    ack_path = LinkParams(delay_us=link.delay_us, rate_bps=link.rate_bps, loss=link.loss,
                          duplicate=link.duplicate, reorder=link.reorder, corrupt=link.corrupt)
    cfg = load_sysctl()
    if args.cc:
        cfg.set("net.ipv4.tcp_congestion_control", args.cc)
    if args.ecn:
        cfg.set("net.ipv4.tcp_ecn", 1)
    report_pcap = args.pcap
    if args.report:         # the page is built from the run's capture
        from synack.report.writer import check_output

        check_output(args.report)
        tmp = None if args.pcap else tempfile.mkdtemp(prefix="synack-report-")
        report_pcap = args.pcap or os.path.join(str(tmp), "run.pcap")
    from synack.progress import bar

    try:
        with bar(nbytes, "sim", unit="B", scale=True) as b:
            r = transfer(nbytes, seed=args.seed, link=link, back=ack_path, sender_cfg=cfg,
                         receiver_cfg=load_sysctl(), pcap=report_pcap,
                         progress=b.to if b.shown else None, ipv6=args.ipv6)
        return _sim_outputs(args, r, cfg, report_pcap)
    finally:
        if args.report and not args.pcap:
            shutil.rmtree(os.path.dirname(str(report_pcap)), ignore_errors=True)


def _sim_outputs(args: argparse.Namespace, r: Any, cfg: Sysctl, report_pcap: str | None) -> int:
    print(r.report())
    if r.never_opened:
        if args.pcap:
            print(f"capture written to {args.pcap}")
        print(f"synack: transfer FAILED: the connection never opened: {r.never_opened}",
              file=sys.stderr)
        return 1
    if args.pcap:
        print(f"capture written to {args.pcap}")
    if args.trace_out:
        from synack.trace.cctrace import samples_from_trace, write_cc_trace

        write_cc_trace(args.trace_out, samples_from_trace(r.trace),
                       cc=str(cfg["net.ipv4.tcp_congestion_control"]),
                       start_us=r.started_us)
        print(f"cwnd/ssthresh/RTT trace written to {args.trace_out} ({len(r.trace)} samples)")
    if args.report:
        from synack.commands.report import write_page
        from synack.trace.cctrace import samples_from_trace

        assert report_pcap is not None
        cc_meta = {"cc": str(cfg["net.ipv4.tcp_congestion_control"])}
        write_page(args.report, report_pcap, trace=(cc_meta, samples_from_trace(r.trace)),
                   title=f"synack sim: {args.bytes} over {args.delay}, loss {args.loss}")
    if not (r.intact and r.finished):
        print("synack: transfer FAILED: the receiver did not get exactly the bytes sent",
              file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _Parser(prog="synack", description="TCP in pure Python: simulator, tools, stack.")
    p.add_argument("--version", action="version", version=f"synack {_version()}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    d = sub.add_parser("demo", help="run a scenario in the simulator (default: the seed's example)")
    d.add_argument("name", nargs="?", default="worked-example", help="scenario name")
    d.add_argument("--list", action="store_true", help="list the scenarios")
    d.add_argument("--pcap", metavar="FILE", help="save the capture (Wireshark reads it)")
    d.add_argument("--seed", type=int, default=1, help="random seed of the run")
    d.add_argument("--lang", default="en", help="language of the explanation: en or zh")
    d.add_argument("--report", metavar="F.html", help="also write the run's interactive page")
    d.set_defaults(func=_cmd_demo)

    m = sub.add_parser("sim", help="a simulated bulk transfer between two synack hosts",
                       description="A bulk transfer between two synack hosts over a link "
                                   "impaired as tc netem would: its units and meanings "
                                   "(a bare delay is nanoseconds, a bare probability a "
                                   "percentage).",
                       formatter_class=_DefaultsShown)
    m.add_argument("--bytes", default="10M", help="how much to send (K/M/G = 1024-based)")
    m.add_argument("--delay", default="20ms",
                   help="one-way delay, netem's units: s, ms, us, ns (bare: ns)")
    m.add_argument("--rate", default="100mbit", help="link rate, tc style (kbit, mbit, gbit)")
    m.add_argument("--loss", default="0%", help="loss probability per packet, percent (1 = 1%%)")
    m.add_argument("--reorder", default="0%",
                   help="probability a packet is held back, percent")
    m.add_argument("--duplicate", default="0%",
                   help="probability a packet is duplicated, percent")
    m.add_argument("--corrupt", default="0%", help="probability a bit is flipped, percent")
    m.add_argument("--queue", help="bottleneck queue size (none: unbounded)")
    m.add_argument("--ecn-mark", metavar="BYTES",
                   help="mark ECN-capable packets CE (drop Not-ECT ones) while the queue holds"
                        " more than this, as RED or CoDel with ecn (none: no marking)")
    m.add_argument("--ecn", action="store_true",
                   help="the sender asks for ECN in its SYN (net.ipv4.tcp_ecn = 1)")
    m.add_argument("--seed", type=int, default=1, help="random seed")
    m.add_argument("--cc", help="congestion control of the sender (none: the sysctl's)")
    m.add_argument("--ipv6", action="store_true",
                   help="over IPv6 (2001:db8::1 -> 2001:db8::2): MSS 1440, 40-byte headers")
    m.add_argument("--pcap", metavar="FILE", help="save the capture")
    m.add_argument("--trace-out", metavar="FILE",
                   help="save the sender's cwnd/ssthresh/RTT over time (JSON, for synack plot --cc)")
    m.add_argument("--report", metavar="F.html", help="also write the run's interactive page")
    m.set_defaults(func=_cmd_sim)

    s = sub.add_parser("sysctl", help="show or set synack's sysctls (Linux names and defaults)")
    s.add_argument("names", nargs="*", help="sysctls to show (default: all)")
    s.add_argument("-w", dest="write", action="append", metavar="NAME=VALUE",
                   help="set a value (saved for later synack commands)")
    s.add_argument("-v", "--verbose", action="store_true", help="show what each one does")
    s.add_argument("--reset", action="store_true", help="forget every saved value")
    s.set_defaults(func=_cmd_sysctl)

    for modname in COMMAND_MODULES:
        importlib.import_module(modname).add_parser(sub)
    return p


# Subcommands that live in modules of their own. Each module has
# ``add_parser(sub)``, which adds its parser and sets ``func`` (args -> exit status).
COMMAND_MODULES: tuple[str, ...] = (
    "synack.commands.ladder",
    "synack.commands.plot",
    "synack.commands.ping",
    "synack.commands.serve",
    "synack.commands.connect",
    "synack.commands.run",
    "synack.commands.scan",
    "synack.commands.ss",
    "synack.commands.nstat",
    "synack.commands.header",
    "synack.commands.drill",
    "synack.commands.report",
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("synack")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _quiet_stdout() -> None:
    """The reader went away (``synack ladder F | head``): say nothing more, as ``cat``
    does, and keep Python from complaining when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synack`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:          # bare `synack`: say what there is
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:             # `synack ... | head`: not an error (before OSError)
        _quiet_stdout()
        return 0
    except (SysctlError, ValueError, OSError) as exc:
        print(f"synack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
