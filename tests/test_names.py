"""File names as data: one line of UTF-8 for the journal and logs, bounded names for filing."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.inputs.filing import REASON_SUFFIX, filed_path
from edge_agent.inputs.names import FILED_NAME_MAX_BYTES, filed_name, name_text

RESULT_ID = "01M94VV6Z05YVPH9XNZVAAS1DC"
NAMES = st.binary(min_size=1, max_size=255).map(
    lambda raw: os.fsdecode(raw.replace(b"/", b"").replace(b"\0", b"") or b"x")
)


@settings(max_examples=500)
@given(name=NAMES)
def test_any_name_renders_as_one_line_of_utf8_and_files_within_the_limit(name: str) -> None:
    text = name_text(name)
    text.encode("utf-8")  # no lone surrogate: SQLite, JSON and logs take it
    assert "\n" not in text and "\r" not in text and name_text(text) == text
    filed = filed_name(name)
    assert len(filed.encode("utf-8")) <= FILED_NAME_MAX_BYTES
    # The console finds a filed photo from the journal's rendering of its path.
    assert filed_name(text) == filed
    reason = filed_path("/drop/cam1", "failed", RESULT_ID, name).name + REASON_SUFFIX
    assert reason.startswith(f"{RESULT_ID}_") and len(reason.encode("utf-8")) <= 255


def test_plain_names_are_unchanged_and_odd_bytes_are_percent_encoded() -> None:
    assert name_text("SN-0001 board.png") == "SN-0001 board.png"
    assert name_text(os.fsdecode(b"Pr\xfcfung.jpg")) == "Pr%FCfung.jpg"
    assert name_text("line\nbreak.png") == "line%0Abreak.png"
    assert name_text("Prüfung.jpg") == "Prüfung.jpg"  # valid UTF-8 stays as it is


def test_a_long_name_keeps_its_start_and_its_extension() -> None:
    filed = filed_name("ü" * 200 + ".jpeg")
    assert filed.startswith("üü") and filed.endswith("~.jpeg")
    assert len(filed.encode("utf-8")) <= FILED_NAME_MAX_BYTES
