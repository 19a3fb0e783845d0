"""Why a board or a connector was not judged OK/NOK, in words an operator reads at a glance."""

from __future__ import annotations

from typing import Any

STAGES = {
    "input": "The photo file could not be read",
    "decode": "The photo could not be decoded (damaged, truncated, too large, or not PNG, "
    "JPEG, BMP or TIFF)",
    "align": "The board could not be lined up with the station's reference image",
    "crop": "The connectors could not be cut out of the photo",
    "infer": "One or more connectors could not be scored",
    "heatmap": "The heatmaps could not be drawn",
}
REASONS = {
    "no model loaded": "no model is loaded for this connector",
    "no crop for this connector": "the connector could not be cut out of the photo",
}


def connector_reason(row: dict[str, Any]) -> str | None:
    """The plain reason of one connector row that is ERROR or NOT_DECIDABLE, else None."""
    if row.get("evaluation") in ("OK", "NOK"):
        return None
    reason = row.get("reason") or "no reason was recorded"
    if reason.startswith("not inspected: "):
        stage = reason.removeprefix("not inspected: ").removesuffix(" failed")
        return f"not inspected, because: {STAGES.get(stage, stage).lower()}"
    return REASONS.get(reason, reason)


def board_reasons(verdict: dict[str, Any]) -> list[str]:
    """Sentences saying why the board is ERROR or NOT_DECIDABLE (empty for OK/NOK boards)."""
    if verdict.get("evaluation") not in ("ERROR", "NOT_DECIDABLE"):
        return []
    error = verdict.get("error") or {}
    lines = []
    if error:
        stage = error.get("stage", "")
        headline = STAGES.get(stage, f"The {stage} step failed")
        lines.append(f"{headline}: {error.get('message', 'no details recorded')}.")
    for row in verdict.get("connectors", []):
        reason = connector_reason(row)
        if reason and error.get("stage") in (None, "infer"):
            lines.append(f"{row.get('id')}: {reason}.")
    if not verdict.get("connectors") and not error:
        lines.append("No connector was inspected.")
    return lines
