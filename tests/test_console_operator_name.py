"""The operator name a console without users records confirmations under."""

from __future__ import annotations

import pytest

from edge_agent.console.operator_name import (
    NameRefused,
    checked_name,
    cookie_value,
    from_cookie,
)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Jürgen Müller", "Jürgen Müller"),
        ("  Łukasz   Wójcik ", "Łukasz Wójcik"),
        ("李雷", "李雷"),
        ("Seán O'Brien", "Seán O'Brien"),
        ("Anne-Marie D. Dupont", "Anne-Marie D. Dupont"),
        ("Jose\u0301", "José"),  # typed with a combining accent: kept composed
        ("anna@line2", "anna@line2"),
    ],
)
def test_names_in_any_script_are_kept_tidied(typed: str, kept: str) -> None:
    assert checked_name(typed) == kept
    assert cookie_value(kept).isascii()
    assert from_cookie(cookie_value(kept)) == kept


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("anna/../root", "may not hold '/'"),
        ("Jürgen <admin>", "may not hold '<' '>'"),
        ("x" * 65, "65 characters long"),
        ("-- .", "needs a letter or a digit"),
    ],
)
def test_a_name_that_cannot_be_kept_is_refused_with_the_reason(typed: str, why: str) -> None:
    with pytest.raises(NameRefused, match=why):
        checked_name(typed)


def test_a_cookie_holding_no_acceptable_name_gives_none() -> None:
    assert from_cookie(None) is None
    assert from_cookie("%3Cadmin%3E") is None
    assert from_cookie("%FF") is None
