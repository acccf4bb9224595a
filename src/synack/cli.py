"""The ``synack`` command.

Every subcommand reports a bad argument with a one-line reason on stderr and
exits with status 2 (argparse's convention); a failed run exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from synack.config import KNOBS, Sysctl, SysctlError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
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
    from synack.demo.scenarios import DESCRIPTIONS, SCENARIOS

    if args.list:
        for name, desc in DESCRIPTIONS.items():
            print(f"{name:<24} {desc}")
        return 0
    if args.name not in SCENARIOS:
        raise SysctlError(
            f"unknown scenario {args.name!r} (try: synack demo --list)")
    outcome = SCENARIOS[args.name](args.seed)
    print(outcome.text())
    if args.pcap:
        assert outcome.net is not None
        outcome.net.write_pcap(args.pcap)
        print(f"\ncapture written to {args.pcap} ({len(outcome.net.records)} packets)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _Parser(prog="synack", description="TCP in pure Python: simulator, tools, stack.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="run a scenario in the simulator (default: the seed's example)")
    d.add_argument("name", nargs="?", default="worked-example", help="scenario name")
    d.add_argument("--list", action="store_true", help="list the scenarios")
    d.add_argument("--pcap", metavar="FILE", help="save the capture (Wireshark reads it)")
    d.add_argument("--seed", type=int, default=1, help="random seed of the run")
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("sysctl", help="show or set synack's sysctls (Linux names and defaults)")
    s.add_argument("names", nargs="*", help="sysctls to show (default: all)")
    s.add_argument("-w", dest="write", action="append", metavar="NAME=VALUE",
                   help="set a value (saved for later synack commands)")
    s.add_argument("-v", "--verbose", action="store_true", help="show what each one does")
    s.add_argument("--reset", action="store_true", help="forget every saved value")
    s.set_defaults(func=_cmd_sysctl)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synack`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SysctlError, ValueError, OSError) as exc:
        print(f"synack: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
