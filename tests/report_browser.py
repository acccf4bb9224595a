"""Drive a real headless Chromium over a `synack report` page (selenium + Debian's chromium).

Used by tests/test_report.py, and run as a script it regenerates the README's
screenshot from a fresh simulator run::

    PYTHONPATH=src python tests/report_browser.py docs/report.png

The browser needs ``--no-sandbox`` as root and ``--headless=new``; the page is
opened from a ``file://`` URL, so nothing but the one file is loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1500, 1240)
# The README's run: a lossy transfer whose page shows a fast retransmission, SACKs and cwnd.
SCREENSHOT_RUN = ["sim", "--bytes", "300K", "--loss", "2%", "--seed", "1"]


def missing_tools() -> list[str]:
    """What a browser test lacks: `make system-deps` and the [test] extras install them."""
    out = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        out.append("selenium (pip install -e '.[test]')")
    return out


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium WebDriver, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US",
                "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, what: str, timeout: float = 20.0) -> Any:
    """Poll ``script`` (a JS expression) until it is truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {script} = {value!r}")
        time.sleep(0.05)


def open_report(driver: Any, page: Path) -> None:
    """Load the page and wait until its dissections are inflated."""
    driver.get(page.resolve().as_uri())
    wait_for(driver, "window.synackReport && window.synackReport.ready", "the page to load")


def click_canvas(driver: Any, canvas_id: str, x: float, y: float) -> None:
    """A real mouse click at (x, y) CSS pixels inside the canvas."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.ID, canvas_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", el)
    # selenium 4 offsets are from the element's centre.
    ActionChains(driver).move_to_element_with_offset(
        el, int(x - rect["width"] / 2), int(y - rect["height"] / 2)).click().perform()


def screenshot(page: Path, out: Path, prepare: Callable[[Any], None] | None = None,
               driver: Any = None) -> None:
    """Open ``page`` (in ``driver``, or a browser of its own), let ``prepare(driver)`` set
    it up, and save a PNG of the window."""
    if driver is None:
        with browser() as own:
            screenshot(page, out, prepare, own)
        return
    open_report(driver, page)
    if prepare is not None:
        prepare(driver)
    # The whole page in one picture: grow the window to the page's height (it is a viewport
    # of fixed height whatever the capture's length), then put it back.
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    inner = driver.execute_script("return window.innerHeight")
    driver.set_window_size(size["width"], size["height"] + max(0, height - inner))
    driver.execute_script("window.scrollTo(0, 0);")
    wait_for(driver, "synackReport.drawn()", "the last redraw")
    driver.save_screenshot(str(out))
    driver.set_window_size(size["width"], size["height"])


def select_first_retransmission(driver: Any) -> None:
    """Zoom on the first fast retransmission and select it, as the README shows it."""
    i = driver.execute_script(
        "return synackReport.data.seg.findIndex(s => s[9].includes('Fast Retransmission'));")
    if i < 0:
        i = driver.execute_script(
            "return synackReport.data.seg.findIndex(s => s[9].length > 0);")
    t = driver.execute_script(f"return synackReport.data.seg[{i}][1];")
    driver.execute_script(f"synackReport.showRange({t} - 60000, {t} + 45000);")
    driver.execute_script(f"synackReport.select({i});")


def main(argv: list[str]) -> int:
    """Regenerate the README screenshot (argv[0]: the PNG to write)."""
    out = Path(argv[0] if argv else "docs/report.png")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "run.html"
        subprocess.run([sys.executable, "-m", "synack.cli", *SCREENSHOT_RUN,
                        "--report", str(page)], check=True, stdout=subprocess.DEVNULL)
        screenshot(page, out, select_first_retransmission)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
