"""What a soak run shows: every input against its verdicts and the journal's rows.

- lost: an input with no verdict at the subscriber;
- doubled: an input with more than one distinct result id, in the verdicts or the journal
  (a QoS 1 redelivery of the same result id is not a double);
- seq gaps: per session, a seq number of 1..last_seq missing from the journal's rows or from
  the verdicts received;
- unexpected: a verdict for a part id that was never sent.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from trainer.benches.soak.faults import Event
from trainer.benches.soak.stream import SentInput

SAMPLES = 20
"""At most this many part ids listed per failing check."""


def journal_rows(journal: Path) -> tuple[list[tuple[int, int, str, str]], dict[int, int]]:
    """(session, seq, part_id, result_id) of every inspection; last_seq of every session."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT session, seq, part_id, result_id FROM inspections ORDER BY session, seq"
        ).fetchall()
        sessions = dict(db.execute("SELECT id, last_seq FROM sessions").fetchall())
    return rows, sessions


def seq_gaps(
    sessions: dict[int, int], journal_seqs: set[tuple[int, int]], verdict_seqs: set[tuple[int, int]]
) -> dict[int, dict]:
    """Per session: rows, last_seq and the seqs missing from the journal and the verdicts."""
    report = {}
    for session, last_seq in sorted(sessions.items()):
        expected = set(range(1, last_seq + 1))
        report[session] = {
            "rows": sum(1 for s, _ in journal_seqs if s == session),
            "last_seq": last_seq,
            "journal_gaps": sorted(expected - {q for s, q in journal_seqs if s == session}),
            "verdict_gaps": sorted(expected - {q for s, q in verdict_seqs if s == session}),
        }
    return report


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    values = np.asarray(seconds) * 1000
    return {f"p{p}": round(float(np.percentile(values, p)), 1) for p in (50, 90, 99)} | {
        "max": round(float(values.max()), 1)
    }


def check(
    sent: list[SentInput],
    verdicts: list[tuple[float, dict]],
    journal: Path,
    events: list[Event],
    stream_started: float,
) -> dict:
    """The soak's numbers and verdict (`passed`) from what was sent, received and journaled."""
    rows, sessions = journal_rows(journal)
    sent_by_part = {item.part_id: item for item in sent}
    result_ids: dict[str, set[str]] = defaultdict(set)
    first_arrival: dict[str, float] = {}
    unique: dict[str, dict] = {}
    for arrived, verdict in verdicts:
        part_id = verdict.get("part_id")
        result_ids[part_id].add(verdict["result_id"])
        first_arrival.setdefault(part_id, arrived)
        unique.setdefault(verdict["result_id"], verdict)
    journal_by_part: dict[str, int] = Counter(part_id for _, _, part_id, _ in rows)
    for _, _, part_id, result_id in rows:
        result_ids[part_id].add(result_id)

    lost = sorted(p for p in sent_by_part if p not in first_arrival)
    doubled = sorted(p for p, ids in result_ids.items() if p in sent_by_part and len(ids) > 1)
    unexpected = sorted(p for p in result_ids if p not in sent_by_part)
    gaps = seq_gaps(
        sessions,
        {(session, seq) for session, seq, _, _ in rows},
        {(v["session"], v["seq"]) for v in unique.values() if "session" in v},
    )
    gap_count = sum(len(s["journal_gaps"]) + len(s["verdict_gaps"]) for s in gaps.values())
    latencies = [first_arrival[p] - item.sent_at for p, item in sent_by_part.items()
                 if p in first_arrival]  # fmt: skip
    send_span = max((i.sent_at for i in sent), default=stream_started) - stream_started
    last_verdict = max(first_arrival.values(), default=stream_started)
    return {
        "passed": not (lost or doubled or gap_count or unexpected),
        "inputs": {
            "sent": len(sent),
            **Counter(item.route for item in sent),
            "rate_per_s": round((len(sent) - 1) / send_span, 2) if send_span > 0 else None,
        },
        "verdicts": {
            "received": len(verdicts),
            "distinct": len(unique),
            "redelivered": len(verdicts) - len(unique),
            "repeats_of_known_content": sum("duplicate_of" in v for v in unique.values()),
            "historical": sum(bool(v.get("historical")) for v in unique.values()),
            "evaluations": dict(Counter(v["evaluation"] for v in unique.values())),
        },
        "lost": len(lost),
        "doubled": len(doubled),
        "unexpected": len(unexpected),
        "seq_gaps": gap_count,
        "examples": {
            "lost": lost[:SAMPLES],
            "doubled": {
                p: {"route": sent_by_part[p].route, "result_ids": sorted(result_ids[p])}
                for p in doubled[:SAMPLES]
            },
            "unexpected": unexpected[:SAMPLES],
        },
        "journal": {
            "rows": len(rows),
            "rows_minus_inputs": len(rows) - len(sent),
            "inputs_with_more_than_one_row": sum(n > 1 for n in journal_by_part.values()),
            "sessions": gaps,
        },
        "agent_boards_per_s": (
            round((len(sent) - len(lost)) / (last_verdict - stream_started), 2)
            if last_verdict > stream_started
            else None
        ),
        "latency_ms": percentiles_ms(latencies),
        "events": [{"at_s": e.at_s, "what": e.what, "detail": e.detail} for e in events],
    }
