"""One self-contained interactive HTML page per run (``synack report``, ``--report``).

Split by role: :mod:`.data` turns a capture (and, where synack was an end, its
congestion trace) into plain JSON-ready data; :mod:`.reasons` says in English and
Chinese which rule gave each analysis mark; :mod:`.writer` puts the data, the
style ``page.css`` and the script ``page.js`` (hand-written vanilla JavaScript,
no network fetches) into the template ``page.html`` and writes the one file.
"""

from __future__ import annotations

from synack.report.data import build_report
from synack.report.writer import write_report

__all__ = ["build_report", "write_report"]
