"""Sysctls: Linux names and defaults, validated like `sysctl -w`."""

import pytest

from synack.config import KNOBS, Sysctl, SysctlError


def test_seed_defaults() -> None:
    cfg = Sysctl()
    assert cfg["net.ipv4.tcp_keepalive_time"] == 7200
    assert cfg["net.ipv4.tcp_keepalive_intvl"] == 75
    assert cfg["net.ipv4.tcp_keepalive_probes"] == 9
    assert cfg["net.ipv4.tcp_fin_timeout"] == 60
    assert cfg["net.core.somaxconn"] == 4096
    assert cfg["net.ipv4.tcp_max_syn_backlog"] > 0
    assert cfg["net.ipv4.tcp_syn_retries"] == 6
    assert cfg["net.ipv4.tcp_synack_retries"] == 5
    assert cfg["net.ipv4.tcp_retries2"] == 15


def test_assign_parses_like_sysctl_w() -> None:
    cfg = Sysctl()
    cfg.assign("net.ipv4.tcp_rmem=4096 87380 1000000")
    assert cfg["net.ipv4.tcp_rmem"] == (4096, 87380, 1000000)
    cfg.assign("net.ipv4.tcp_fin_timeout = 30")
    assert cfg.int("net.ipv4.tcp_fin_timeout") == 30
    assert cfg.format("net.ipv4.tcp_rmem") == "net.ipv4.tcp_rmem = 4096\t87380\t1000000"


@pytest.mark.parametrize("bad, reason", [
    ("net.ipv4.no_such_thing=1", "unknown sysctl"),
    ("net.ipv4.tcp_fin_timeout=soon", "not an integer"),
    ("net.ipv4.tcp_tw_reuse=3", "outside [0, 2]"),
    ("net.ipv4.tcp_rmem=1 2", "expected 3 integer"),
    ("net.ipv4.tcp_rmem=3 2 1", "increasing order"),
    ("net.ipv4.tcp_keepalive_time", "expected NAME=VALUE"),
])
def test_bad_values_are_rejected_with_a_reason(bad: str, reason: str) -> None:
    with pytest.raises(SysctlError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        Sysctl().assign(bad)


def test_constructor_overrides_and_every_default_valid() -> None:
    cfg = Sysctl(net__ipv4__tcp_keepalive_time=10)
    assert cfg["net.ipv4.tcp_keepalive_time"] == 10
    for knob in KNOBS.values():   # every default passes its own validation
        knob.parse(knob.format(knob.default))


def test_hot_attributes_follow_every_write() -> None:
    # The sysctls read per packet or per SYN are plain attributes too; they must
    # always equal the table's values (from the constructor, set() and assign()).
    from synack.config import _HOT
    cfg = Sysctl(net__ipv4__ip_default_ttl=9)
    assert cfg.ip_ttl == 9
    for name, attr in _HOT.items():
        assert getattr(cfg, attr) == cfg.int(name)
    cfg.assign("net.ipv4.tcp_early_retrans=0")
    cfg.set("net.ipv4.tcp_syncookies", 2)
    cfg.set("net.ipv4.tcp_notsent_lowat", "16384")
    assert (cfg.early_retrans, cfg.syncookies, cfg.notsent_lowat) == (0, 2, 16384)
    for name, attr in _HOT.items():
        assert getattr(cfg, attr) == cfg.int(name)


def test_derived_values_forgotten_at_every_write() -> None:
    cfg = Sysctl()
    cfg.derived["x"] = 1
    cfg.set("net.ipv4.tcp_fin_timeout", 30)
    assert cfg.derived == {}
