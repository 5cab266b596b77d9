"""The one Markdown table renderer: text from a server cannot break a table."""

from __future__ import annotations

import pytest

from reporting.tables import escape_cell, markdown_table


def test_a_table_has_a_header_a_rule_and_one_line_per_row() -> None:
    assert markdown_table(["a", "b"], [[1, None], ["x", 2.5]]) == [
        "| a | b |", "|---|---|", "| 1 |  |", "| x | 2.5 |",
    ]


@pytest.mark.parametrize("text", ["a|b", "line one\nline two", "tab\there", "back\\|slash", "\r\n|"])
def test_server_text_stays_in_its_cell(text: str) -> None:
    row = markdown_table(["message"], [[text]])[2]
    unescaped_pipes = row.replace("\\\\", "").replace("\\|", "").count("|")
    assert unescaped_pipes == 2, row
    assert "\n" not in row and "\r" not in row


def test_escape_keeps_plain_text() -> None:
    assert escape_cell("`rule-id`: says *this*") == "`rule-id`: says *this*"


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 cells, the header 2"):
        markdown_table(["a", "b"], [["only one"]])


def test_tabs_fold_and_other_backslashes_stay() -> None:
    assert escape_cell("a\tb") == "a b"
    assert escape_cell(r"C:\path `x\y`") == r"C:\path `x\y`"
