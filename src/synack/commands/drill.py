"""``synack drill SCRIPT.pkt...``: packetdrill scripts against synack (or the kernel).

Each script runs on its own fresh host; a failure prints packetdrill's message
(``file:line``, expected vs actual) and, against synack, the ladder of the run so
far with synack's states. One ``PASS``/``FAIL`` line per script, then the totals;
exit status 0 when every script passed.
"""

from __future__ import annotations

import argparse
import sys

from synack.drill.session import OptionError, Settings, TargetFactory, run_file, sim_factory
from synack.progress import Bar, bar


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``drill`` to the ``synack`` command."""
    p = sub.add_parser("drill", help="run packetdrill scripts against synack (or --kernel)")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT.pkt", help="packetdrill scripts")
    p.add_argument("--kernel", action="store_true",
                   help="run against the Linux kernel (TUN device in a new namespace; root)")
    p.add_argument("--tolerance_usecs", type=int, metavar="US",
                   help="timing tolerance (default 4000, or the script's header)")
    p.add_argument("--tolerance_percent", type=float, metavar="P",
                   help="tolerance as a share of the gap since the last event (default 12.5)")
    p.add_argument("--ip_version", metavar="V",
                   help="ipv4 (default), ipv6: the script runs over IPv6, from 2001:db8::1 "
                        "to synack at 2001:db8::2 unless --local_ip/--remote_ip say otherwise, "
                        "or ipv4-mapped-ipv6: IPv4 on the wire, AF_INET6 sockets whose "
                        "addresses are IPv4-mapped (::ffff:192.0.2.1)")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VAL",
                   help="define a symbol the scripts use (e.g. -D TFO_COOKIE=...)")
    p.add_argument("--local_ip", metavar="IP", help="the stack's address (default 192.168.0.1)")
    p.add_argument("--remote_ip", metavar="IP", help="the script's address (default 192.0.2.1)")
    p.add_argument("--mtu", type=int, help="MTU of the stack's link (default 1500)")
    p.add_argument("--init_scripts", metavar="CMD", action="append", default=[],
                   help="commands (comma-separated) to run before each script")
    p.add_argument("--gateway_ip", help=argparse.SUPPRESS)
    p.add_argument("--netmask_ip", help=argparse.SUPPRESS)
    p.add_argument("--send_omit_free", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--parse-only", action="store_true",
                   help="only check that the scripts parse (one line per error)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show every packet injected and sniffed")
    p.set_defaults(func=run)


def _factory(kernel: bool) -> TargetFactory:
    if not kernel:
        return sim_factory
    try:
        from synack.drill import kernel as kmod  # type: ignore[attr-defined]
    except ImportError:
        raise OptionError("--kernel is not available yet (synack.drill.kernel is missing)")\
            from None
    factory: TargetFactory = kmod.make_target
    return factory


def _parse_only(paths: list[str], defines: dict[str, str]) -> int:
    from synack.drill.lexer import DrillSyntaxError
    from synack.drill.parse import parse_file

    ok = 0
    for path in paths:
        try:
            parse_file(path, defines)
            ok += 1
        except DrillSyntaxError as exc:
            print(exc)
    print(f"{ok} of {len(paths)} script{'s' if len(paths) != 1 else ''} parse")
    return 0 if ok == len(paths) else 1


def run(args: argparse.Namespace) -> int:
    """Run every script; 0 if all passed, 1 if any failed."""
    defines = {}
    for d in args.defines:
        name, sep, value = d.partition("=")
        if not sep or not name:
            raise OptionError(f"-D wants NAME=VALUE, not {d!r}")
        defines[name] = value
    if args.parse_only:
        return _parse_only(args.scripts, defines)
    extra: dict[str, str | None] = {}
    if args.gateway_ip:
        extra["gateway_ip"] = args.gateway_ip
    if args.netmask_ip:
        extra["netmask_ip"] = args.netmask_ip
    if args.send_omit_free:
        extra["send_omit_free"] = None
    settings = Settings(tolerance_us=args.tolerance_usecs,
                        tolerance_percent=args.tolerance_percent,
                        local_ip=args.local_ip, remote_ip=args.remote_ip, mtu=args.mtu,
                        ip_version=args.ip_version, defines=defines,
                        init_scripts=tuple(c for arg in args.init_scripts
                                           for c in arg.split(",") if c),
                        extra=extra,
                        verbose=args.verbose)
    factory = _factory(args.kernel)
    log = print if args.verbose else None
    passed = failed = unsupported = 0
    # A bar over the scripts, on a terminal, when there are several and no -v chatter.
    many = len(args.scripts) > 1 and not args.verbose
    with bar(len(args.scripts) if many else 0, "drill", unit="script") if many else Bar() as b:
        for path in args.scripts:
            b.note(path)
            out = run_file(path, settings, factory, log)
            b.update()
            if out.passed:
                passed += 1
                b.write(f"PASS {path}")
                continue
            failed += 1
            unsupported += out.unsupported
            b.write(out.message)
            if out.detail:
                b.write(out.detail)
            b.write(f"FAIL {path}" + (" (unsupported)" if out.unsupported else ""))
    total = passed + failed
    target = "the kernel" if args.kernel else "synack"
    print(f"{passed} passed, {failed} failed ({unsupported} unsupported) of {total} "
          f"script{'s' if total != 1 else ''} against {target}")
    sys.stdout.flush()
    return 0 if failed == 0 else 1
