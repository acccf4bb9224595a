"""``synack sim`` reads its impairments as tc netem does, shows its defaults, and says
when the connection never opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synack.link.impair import parse_impairment
from synack.sim import LinkParams
from synack.units import parse_ratio, parse_time_us

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["SYNACK_SYSCTL_CONF"] = os.devnull
    return subprocess.run([sys.executable, "-m", "synack.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize("text,ratio", [("1", 0.01), ("1%", 0.01), ("0.5", 0.005),
                                        ("100", 1.0), ("0", 0.0), ("2.5%", 0.025)])
def test_a_bare_probability_is_a_percentage_as_netem_parse_percent(text: str,
                                                                   ratio: float) -> None:
    assert parse_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize("text,us", [("20ms", 20_000), ("1.5s", 1_500_000), ("300us", 300),
                                     ("5000ns", 5), ("20msec", 20_000), ("2secs", 2_000_000),
                                     ("20000", 20), ("20", 0)])
def test_a_bare_delay_is_nanoseconds_as_netem_get_time64(text: str, us: int) -> None:
    assert parse_time_us(text) == us


@pytest.mark.parametrize("text", ["120", "101%", "-1", "2x", "1e"])
def test_probabilities_outside_0_to_100_or_unitless_junk_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ratio(text)


def test_impair_spec_reads_netems_units_too() -> None:
    assert parse_impairment("delay 10ms loss 1") == LinkParams(delay_us=10_000, loss=0.01)


def test_sim_loss_1_is_one_percent() -> None:
    # Same seed, "1" and "1%": the same run, so the same report.
    bare = run("sim", "--bytes", "200K", "--loss", "1", "--seed", "3")
    pct = run("sim", "--bytes", "200K", "--loss", "1%", "--seed", "3")
    assert bare.returncode == 0 == pct.returncode, (bare.stderr, pct.stderr)
    strip = [ln for ln in bare.stdout.splitlines() if "simulated in" not in ln]
    assert strip == [ln for ln in pct.stdout.splitlines() if "simulated in" not in ln]
    assert "retransmitted 0 segments" not in bare.stdout    # 1 %, not 100 % nor 0.01 %


def test_sim_help_shows_defaults() -> None:
    out = run("sim", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for default in ("(default: 10M)", "(default: 20ms)", "(default: 100mbit)",
                    "(default: 0%)", "(default: 1)"):
        assert default in text, out.stdout
    assert "(default: None)" not in text


def test_sim_says_when_the_connection_never_opened() -> None:
    r = run("sim", "--bytes", "10K", "--loss", "100%")
    assert r.returncode == 1, (r.stdout, r.stderr)
    msg = "the connection never opened: SYN retried 6 times, gave up after 127.0 s " \
          "(Connection timed out)"
    assert msg in r.stdout, r.stdout
    assert r.stderr.count("\n") == 1 and "never opened" in r.stderr, r.stderr
    assert "CORRUPT OR INCOMPLETE" not in r.stdout
    assert "packets       7 on the wire" in r.stdout      # 1 SYN + 6 retries, nothing after


def test_a_bare_delay_is_nanoseconds_and_sim_says_so() -> None:
    # netem reads "20" as 20 ns; a user who meant milliseconds is told once, on stderr.
    bare = run("sim", "--bytes", "20K", "--delay", "20")
    assert bare.returncode == 0, bare.stderr
    assert "--delay 20 is 20 ns" in bare.stderr and "20ms" in bare.stderr, bare.stderr
    unit = run("sim", "--bytes", "20K", "--delay", "20ms")
    assert unit.returncode == 0 and "note:" not in unit.stderr, unit.stderr
