"""Why a board is not OK, in words an operator reads at a glance: which connector scored how far
over its threshold, which could not be judged and why. No server path appears: a file is named
by its name."""

from __future__ import annotations

import re
from typing import Any

_PATH = re.compile(r"(?<![\w/:.])/(?:[^\s/:]+/)+([^\s/:]+)")

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


def without_paths(text: str) -> str:
    """`text` with every absolute file path replaced by the file's name."""
    return _PATH.sub(r"\1", text)


def connector_reason(row: dict[str, Any]) -> str | None:
    """The plain reason of one connector row that is ERROR or NOT_DECIDABLE, else None."""
    if row.get("evaluation") in ("OK", "NOK"):
        return None
    reason = row.get("reason") or "no reason was recorded"
    if reason.startswith("not inspected: "):
        stage = reason.removeprefix("not inspected: ").removesuffix(" failed")
        return f"not inspected, because: {STAGES.get(stage, stage).lower()}"
    return without_paths(REASONS.get(reason, reason))


def over_threshold(row: dict[str, Any]) -> str:
    """A NOK connector's score in words: how many times its threshold."""
    score, threshold = row.get("score"), row.get("threshold")
    if score is None or not threshold:
        return f"{row.get('id')} was judged NOK"
    return (
        f"{row.get('id')} scored {score / threshold:.1f} × its threshold "
        f"({score:.2f} against {threshold:.2f}): unlike the OK connectors its model learnt"
    )


def board_reasons(verdict: dict[str, Any]) -> list[str]:
    """Sentences saying why the board is NOK, ERROR or NOT_DECIDABLE (empty for an OK board)."""
    evaluation = verdict.get("evaluation")
    rows = verdict.get("connectors", [])
    if evaluation == "NOK":
        lines = [over_threshold(row) for row in rows if row.get("evaluation") == "NOK"]
        unjudged = [(row.get("id"), connector_reason(row)) for row in rows]
        return lines + [f"{cid}: {reason}." for cid, reason in unjudged if reason]
    if evaluation not in ("ERROR", "NOT_DECIDABLE"):
        return []
    error = verdict.get("error") or {}
    lines = []
    if error:
        stage = error.get("stage", "")
        headline = STAGES.get(stage, f"The {stage} step failed")
        message = without_paths(error.get("message", "no details recorded"))
        lines.append(f"{headline}: {message}.")
    for row in rows:
        reason = connector_reason(row)
        if reason and error.get("stage") in (None, "infer"):
            lines.append(f"{row.get('id')}: {reason}.")
    if not rows and not error:
        lines.append("No connector was inspected.")
    return lines
