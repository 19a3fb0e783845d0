"""Why a board was not judged, in the words the board page shows."""

from __future__ import annotations

from edge_agent.console.explain import board_reasons
from edge_agent.contracts.verdict import (
    ERROR,
    NOT_DECIDABLE,
    ConnectorOutcome,
    Failure,
    build_verdict,
)


def verdict(connectors: list[ConnectorOutcome], failure: Failure | None) -> dict:
    return build_verdict(
        result_id="01M8PQW2ACTDKWY9PGZF62BHMW",
        station="line/aoi",
        camera="cam1",
        part_id="SN1",
        source_uri="file:///drop/SN1.png",
        source_sha256="0" * 64,
        captured_at=None,
        processing_ms={"total": 12.0},
        connectors=connectors,
        failure=failure,
    )


def test_a_board_that_could_not_be_aligned_says_so_once():
    failure = Failure("align", "rotation 12.0° beyond 8°", NOT_DECIDABLE)
    rows = [
        ConnectorOutcome(c, NOT_DECIDABLE, None, 1.0, None, reason="not inspected: align failed")
        for c in ("J1", "J2")
    ]

    reasons = board_reasons(verdict(rows, failure))

    assert reasons == [
        "The board could not be lined up with the station's reference image: "
        "rotation 12.0° beyond 8°."
    ]


def test_a_connector_without_a_model_is_named_with_its_reason():
    rows = [
        ConnectorOutcome.scored("J1", 0.4, 1.0, {"version": "v", "sha256": "s"}),
        ConnectorOutcome("J2", ERROR, None, None, None, reason="no model loaded"),
    ]

    reasons = board_reasons(verdict(rows, Failure("infer", "J2: no model loaded")))

    assert reasons == [
        "One or more connectors could not be scored: J2: no model loaded.",
        "J2: no model is loaded for this connector.",
    ]


def test_an_ok_board_needs_no_explanation_and_a_nok_one_says_how_far_over_it_scored():
    model = {"version": "v", "sha256": "s"}
    ok = [ConnectorOutcome.scored("J1", 0.4, 1.0, model)]
    nok = [
        ConnectorOutcome.scored("J1", 3.0, 1.0, model),
        ConnectorOutcome.scored("J2", 0.9, 2.0, model),
    ]

    assert board_reasons(verdict(ok, None)) == []
    assert board_reasons(verdict(nok, None)) == [
        "J1 scored 3.0 × its threshold (3.00 against 1.00): unlike the OK connectors its model "
        "learnt"
    ]


def test_an_unreadable_photo_is_named_by_its_file_never_by_the_servers_path():
    failure = Failure("decode", "/var/lib/edge-inspect/drop/cam1/SN1.png: truncated PNG header")

    reasons = board_reasons(verdict([], failure))

    assert reasons == [
        "The photo could not be decoded (damaged, truncated, too large, or not PNG, JPEG, BMP or "
        "TIFF): SN1.png: truncated PNG header."
    ]
