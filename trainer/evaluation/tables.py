"""Result tables written the same way everywhere: a markdown file and a CSV file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np


def cell(value: object) -> str:
    """A table cell: '-' for missing, 4 significant digits for floats."""
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """`rows` as a markdown table over `columns` (missing keys shown as '-')."""
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return header + "".join(
        "| " + " | ".join(cell(row.get(c)) for c in columns) + " |\n" for row in rows
    )


def write_tables(
    markdown_path: Path, csv_path: Path, rows: list[dict], columns: list[str], extra: list[dict]
) -> str:
    """Write `rows + extra` as markdown and `rows` as CSV; return the markdown."""
    table = markdown_table(rows + extra, columns)
    markdown_path.write_text(table, encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path.write_text(buffer.getvalue(), encoding="utf-8")
    return table


def means_with_ko(
    rows: list[dict], group_by: tuple[str, ...], columns: tuple[str, ...], label: dict[str, str]
) -> list[dict]:
    """Per value of the `group_by` columns (in first-seen order), the mean of each of `columns`
    over its rows that have test KO (an image AUROC) and no error; `label` fills other keys."""
    means = []
    for group in dict.fromkeys(tuple(row[key] for key in group_by) for row in rows):
        chosen = [
            r
            for r in rows
            if tuple(r[key] for key in group_by) == group
            and not r.get("error")
            and r.get("image_auroc") is not None
        ]
        mean: dict = {**dict(zip(group_by, group, strict=True)), **label}
        for column in columns:
            values = [r[column] for r in chosen if r.get(column) is not None]
            mean[column] = float(np.mean(values)) if values else None
        means.append(mean)
    return means
