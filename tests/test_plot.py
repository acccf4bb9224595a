"""`synack plot`: the Stevens graph of a capture and the cwnd trace of a sim run, as PNG."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_trace_capture import lossy_run

from synack.cli import main
from synack.trace.capture import read_capture
from synack.trace.plot import cc_figure, save_png, stevens_figure


def png_pixels(path: Path) -> tuple[tuple[int, int], float]:
    """(size, variance of the grey levels) of a PNG."""
    from PIL import Image, ImageStat

    with Image.open(path) as im:
        assert im.format == "PNG"
        grey = im.convert("L")
        return im.size, ImageStat.Stat(grey).var[0]


def test_stevens_figure_has_axes_lines_and_retransmissions(tmp_path: Path) -> None:
    path, _ = lossy_run(tmp_path, seed=1, loss=0.03)
    [conn] = read_capture(path).connections
    fig = stevens_figure(conn, 0)
    [ax] = fig.axes
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == "relative sequence number (bytes)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["data segments", "retransmissions", "ACK", "receive window (ack + rwnd)",
                      "SACK blocks (new bytes)"]
    # The ACK line ends at the last ACK: all data plus the FIN.
    ack_line = next(line for line in ax.get_lines() if line.get_label() == "ACK")
    assert max(ack_line.get_ydata()) == 150_000 + 2
    retrans = next(line for line in ax.get_lines() if line.get_label() == "retransmissions")
    assert len(retrans.get_xdata()) == 4      # the four segments the simulator dropped
    out = tmp_path / "s.png"
    save_png(fig, out)
    size, variance = png_pixels(out)
    assert size == (1000, 600)
    assert variance > 100                    # not a blank image


def test_plot_command_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = lossy_run(tmp_path, seed=1, loss=0.03)
    out = tmp_path / "graph.png"
    assert main(["plot", str(path), "-o", str(out), "--dir", "client->server"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    size, variance = png_pixels(out)
    assert size == (1000, 600) and variance > 100
    # The other direction carries no data: the plot still has axes, but only ACK lines.
    back = tmp_path / "back.png"
    assert main(["plot", str(path), "-o", str(back), "--dir", "192.0.2.2->192.0.2.1"]) == 0
    assert png_pixels(back)[1] > 10


def test_sim_trace_out_and_cc_plot(tmp_path: Path) -> None:
    trace, png = tmp_path / "cc.json", tmp_path / "cc.png"
    r = subprocess.run([sys.executable, "-m", "synack.cli", "sim", "--bytes", "200K",
                        "--delay", "10ms", "--rate", "10mbit", "--loss", "2%", "--seed", "4",
                        "--trace-out", str(trace)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    doc = json.loads(trace.read_text())
    assert doc["format"] == "synack-cc-trace" and doc["cc"] == "cubic"
    samples = doc["samples"]
    assert len(samples) > 20
    # Linux's initial window, 10, plus one for the segment the first ACK covers: the
    # initial window was full (tcp_is_cwnd_limited()), so slow start grows it.
    assert samples[0]["cwnd"] == 11
    assert all(a["t_us"] <= b["t_us"] for a, b in itertools.pairwise(samples))
    assert any(s["ssthresh"] < 0x7FFFFFFF for s in samples)  # a loss set ssthresh
    assert all(s["srtt_us"] is None or s["srtt_us"] >= 20_000 for s in samples)
    assert main(["plot", "--cc", str(trace), "-o", str(png)]) == 0
    size, variance = png_pixels(png)
    assert size == (1000, 600) and variance > 100
    from synack.trace.cctrace import read_cc_trace

    _, parsed = read_cc_trace(trace)
    fig = cc_figure(parsed)
    top, bottom = fig.axes
    assert top.get_ylabel() == "segments" and bottom.get_ylabel() == "ms"
    assert bottom.get_xlabel() == "time since the trace's first point (s)"   # no start given
    assert [ln.get_label() for ln in top.get_lines()][:2] == ["cwnd", "ssthresh"]
    assert [ln.get_label() for ln in bottom.get_lines()] == ["smoothed RTT", "RTO"]


def test_plot_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    path, _ = lossy_run(tmp_path, seed=1, loss=0.0)
    for args in (["plot", "--cc", str(bad), "-o", str(tmp_path / "x.png")],
                 ["plot", "-o", str(tmp_path / "x.png")],
                 ["plot", str(path), "-o", str(tmp_path / "x.png"), "--dir", "nowhere"],
                 ["plot", str(path), "-o", str(tmp_path / "x.png"), "--conn", "2"]):
        r = subprocess.run([sys.executable, "-m", "synack.cli", *args], capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode != 0, args
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("synack: "), (args, r.stderr)
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_plot_says_so(tmp_path: Path) -> None:
    path, _ = lossy_run(tmp_path, seed=1, loss=0.0)
    # A path entry that makes `import matplotlib` fail, as on an install without the extra.
    blocker = tmp_path / "block"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib')\n")
    r = subprocess.run([sys.executable, "-m", "synack.cli", "plot", str(path), "-o",
                        str(tmp_path / "x.png")], capture_output=True, text=True, timeout=60,
                       check=False, env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert r.stderr == "synack: plotting needs matplotlib: pip install 'synack[plot]'\n"
