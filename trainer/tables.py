"""Result tables written the same way everywhere: a markdown file and a CSV file."""

from __future__ import annotations

import csv
import io
from pathlib import Path


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
