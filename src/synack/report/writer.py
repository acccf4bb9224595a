"""Put a report's data into the page template and write the one self-contained file.

The template ``page.html`` (next to this module) is the page's structure; its
style ``page.css`` and hand-written JavaScript ``page.js`` are put inline, so
nothing is fetched at view time. The header dissections
are the bulk of the data (some 30 lines per segment and language), so they travel
zlib-compressed and base64-encoded, and the page inflates them with the browser's
own ``DecompressionStream``: a 7,000-segment capture stays a few megabytes.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from importlib import resources
from typing import Any

PLACEHOLDER = "/*SYNACK_REPORT_DATA*/null"
CSS = "/*SYNACK_REPORT_CSS*/"
JS = "/*SYNACK_REPORT_JS*/"


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` can end it early)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(data: dict[str, Any]) -> str:
    """The page's HTML for ``data`` (from :func:`synack.report.data.build_report`)."""
    here = resources.files("synack.report")
    template = here.joinpath("page.html").read_text("utf-8")
    for marker, name in ((CSS, "page.css"), (JS, "page.js")):
        if marker not in template:
            raise RuntimeError(f"page.html has lost its {name} placeholder")
        template = template.replace(marker, here.joinpath(name).read_text("utf-8"), 1)
    body = dict(data)
    dis = body.pop("dis", {"en": [], "zh": []})
    packed = zlib.compress(json.dumps(dis, ensure_ascii=False).encode("utf-8"), 9)
    body["dis_z"] = base64.b64encode(packed).decode("ascii")
    if PLACEHOLDER not in template:
        raise RuntimeError("page.html has lost its data placeholder")
    return template.replace(PLACEHOLDER, _script_json(body), 1)


def write_report(path: str | os.PathLike[str], data: dict[str, Any]) -> int:
    """Write the page to ``path``; the number of bytes written.

    A path that cannot be written raises ValueError (one line), as the commands report it.
    """
    check_output(path)
    html = render(data).encode("utf-8")
    with open(path, "wb") as f:
        f.write(html)
    return len(html)


def check_output(path: str | os.PathLike[str]) -> None:
    """ValueError (one line) if ``path`` is a directory or its directory does not exist."""
    name = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(parent):
        raise ValueError(f"{name}: directory {parent} does not exist")
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory")
