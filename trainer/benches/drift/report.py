"""The drift benchmark's verdict on each scenario: when the monitor warned and alarmed, what
it named, PASS or FAIL against the targets, and the tables (CSV, JSON, markdown).

Delays are counted in boards from the first board at full strength (a step's first changed
board, a ramp's last ramp board): 1 is that board itself, 0 or less a board before it (during
the ramp). Every `<prefix>/drift/<subject>` message is a change of state; the board it
belongs to is the verdict with its `result_id`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.benches.drift.scenarios import CHANGES, Scenario

STEP_LIMIT = 50  # boards from a step to its alarm
RAMP_LIMIT = 200  # boards from a ramp's end to its alarm
CLEAN_MAX_ALARMS = 0
CLEAN_MAX_WARNINGS = 1
LEVEL = {"ok": 0, "warning": 1, "alarm": 2}


@dataclass(frozen=True)
class Event:
    """One state change of one subject, on the board that caused it (None: not a board's)."""

    board: int | None
    subject: str
    state: str
    reason: str
    measure: str | None
    statistic: float | None


@dataclass(frozen=True)
class Named:
    """A subject that left `ok` after the change: the first board of its highest state."""

    subject: str
    state: str
    delay: int
    measure: str | None
    reason: str


@dataclass
class Row:
    """One scenario's outcome."""

    scenario: str
    label: str
    boards: int
    expected: str | None
    needed: str | None  # "alarm", or "warning" where registration absorbs the change
    limit: int | None
    warning_delay: int | None = None
    warning_subject: str | None = None
    alarm_delay: int | None = None
    alarm_subject: str | None = None
    expected_delay: int | None = None  # the expected subject reaching the needed state
    named: list[Named] = field(default_factory=list)
    prefix_warnings: int = 0
    prefix_alarms: int = 0
    warnings: int = 0  # every change into warning / alarm over the whole stream
    alarms: int = 0
    unmapped: int = 0  # messages naming a result id no verdict of this run has
    passed: bool = False
    boards_per_s: float | None = None
    drift_cpu_ms: float | None = None  # the monitor's CPU time per board, capture measures included

    def summary(self) -> str:
        """One line: the row's decision in words."""
        if self.expected is None:
            return f"{self.alarms} alarm(s), {self.warnings} warning(s) on {self.boards} boards"
        if self.expected_delay is None:
            return f"{self.expected} never reached {self.needed}"
        return f"{self.expected} {self.needed} after {self.expected_delay} board(s)"


def events_of(messages: Iterable[Mapping], board_of_result: Mapping[str, int]) -> list[Event]:
    """The drift messages as events on boards, in arrival order."""
    return [
        Event(
            board=board_of_result.get(m.get("result_id") or ""),
            subject=str(m["subject"]),
            state=str(m["state"]),
            reason=str(m.get("reason", "")),
            measure=m.get("measure"),
            statistic=m.get("statistic"),
        )
        for m in messages
        if m.get("state") in LEVEL and m.get("subject")
    ]


def judge(
    scenario: Scenario,
    messages: Iterable[Mapping],
    board_of_result: Mapping[str, int],
    tinted: str,
) -> Row:
    """The row of one scenario from its drift messages and its verdicts' result ids."""
    change = CHANGES[scenario.change] if scenario.change else None
    expected = None if change is None else (change.subject or tinted)
    needed = None if change is None else ("warning" if change.warning_suffices else "alarm")
    limit = None if change is None else (RAMP_LIMIT if scenario.kind == "ramp" else STEP_LIMIT)
    row = Row(scenario.name, scenario.label(), scenario.boards, expected, needed, limit)
    reference = scenario.reference_index
    highest: dict[str, Named] = {}
    for event in events_of(messages, board_of_result):
        level = LEVEL[event.state]
        row.warnings += event.state == "warning"
        row.alarms += event.state == "alarm"
        if event.board is None:
            row.unmapped += event.state != "ok"
            continue
        if change is None:
            continue
        if event.board < scenario.prefix:
            row.prefix_warnings += event.state == "warning"
            row.prefix_alarms += event.state == "alarm"
            continue
        delay = event.board - reference + 1
        if level >= LEVEL["warning"] and row.warning_delay is None:
            row.warning_delay, row.warning_subject = delay, event.subject
        if level >= LEVEL["alarm"] and row.alarm_delay is None:
            row.alarm_delay, row.alarm_subject = delay, event.subject
        if event.subject == expected and level >= LEVEL[needed] and row.expected_delay is None:
            row.expected_delay = delay
        known = highest.get(event.subject)
        if level > 0 and (known is None or level > LEVEL[known.state]):
            highest[event.subject] = Named(
                event.subject, event.state, delay, event.measure, event.reason
            )
    row.named = sorted(highest.values(), key=lambda n: (n.delay, n.subject))
    if change is None:
        row.passed = row.alarms <= CLEAN_MAX_ALARMS and row.warnings <= CLEAN_MAX_WARNINGS
    else:
        row.passed = row.expected_delay is not None and row.expected_delay <= limit
    return row


def target(row: Row) -> str:
    """The row's target in words."""
    if row.expected is None:
        return f"no alarm, at most {CLEAN_MAX_WARNINGS} warning"
    return f"{row.expected} {row.needed} within {row.limit}"


def _delay(delay: int | None, subject: str | None) -> str:
    return "none" if delay is None else f"{delay} ({subject})"


def markdown(rows: list[Row]) -> str:
    """The results as a markdown table, then what each scenario named."""
    lines = [
        "| scenario | boards | to warning | to alarm | named (state, boards, measure) | "
        "clean-prefix warnings / alarms | target | result |",
        "|---|---:|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        if row.expected is None:
            warning, alarm = f"{row.warnings} warning(s)", f"{row.alarms} alarm(s)"
            prefix = "-"
        else:
            warning = _delay(row.warning_delay, row.warning_subject)
            alarm = _delay(row.alarm_delay, row.alarm_subject)
            prefix = f"{row.prefix_warnings} / {row.prefix_alarms}"
        named = "; ".join(f"{n.subject} ({n.state}, {n.delay}, {n.measure})" for n in row.named)
        lines.append(
            f"| {row.label} | {row.boards} | {warning} | {alarm} | {named or '-'} | {prefix} | "
            f"{target(row)} | {'PASS' if row.passed else 'FAIL'} |"
        )
    reasons = [
        f"- {row.label}: {n.subject} {n.state}: {n.reason}" for row in rows for n in row.named
    ]
    costs = [
        f"- {row.label}: the drift monitor took {row.drift_cpu_ms:.3f} ms of CPU per board "
        "(capture measures and monitor, from the agent's counters)"
        for row in rows
        if row.expected is None and row.drift_cpu_ms is not None
    ]
    extra = ["", *reasons] if reasons else []
    return "\n".join(lines + extra + (["", *costs] if costs else [])) + "\n"


CSV_FIELDS = (
    "scenario", "label", "boards", "expected", "needed", "limit", "warning_delay",
    "warning_subject", "alarm_delay", "alarm_subject", "expected_delay", "named",
    "prefix_warnings", "prefix_alarms", "warnings", "alarms", "unmapped", "boards_per_s",
    "drift_cpu_ms", "passed",
)  # fmt: skip


def write_tables(rows: list[Row], settings: Mapping, folder: Path) -> list[Path]:
    """results.csv, results.json and results.md in `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "results.csv", folder / "results.json", folder / "results.md"]
    with paths[0].open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            record = {key: value for key, value in asdict(row).items() if key in CSV_FIELDS}
            record["named"] = " ".join(f"{n.subject}:{n.state}:{n.delay}" for n in row.named)
            writer.writerow(record)
    payload = {
        "settings": dict(settings),
        "passed": all(row.passed for row in rows),
        "rows": [asdict(row) | {"target": target(row)} for row in rows],
    }
    paths[1].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    paths[2].write_text(markdown(rows), encoding="utf-8")
    return paths
