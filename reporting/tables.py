"""Markdown tables, rendered by one function for every report.

Cells may hold text that came from a server (error messages, names), so every
cell is escaped: ``|`` would end the cell and a newline the row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["escape_cell", "markdown_table"]

_PIPE = re.compile(r"(\\*)\|")


def escape_cell(value: Any) -> str:
    """One cell's text: ``|`` escaped, line breaks and tabs folded into spaces.

    GFM reads ``\\|`` as a pipe in any cell, code spans included; backslashes right
    before a pipe are doubled so that they cannot escape the escape. Other
    backslashes are left alone (a code span would show them doubled).
    """
    text = "" if value is None else str(value)
    text = _PIPE.sub(lambda m: m.group(1) * 2 + "\\|", text).replace("\t", " ")
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table (no trailing blank line)."""
    width = len(header)
    for number, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {number} has {len(row)} cells, the header {width}: {list(row)!r}")
    lines = ["| " + " | ".join(escape_cell(h) for h in header) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return lines
