"""The drift monitor: fed each verdict (and its photo's capture measures), it keeps one state per
subject (each enabled connector, and "capture" for the photo) and says which changed.

States ok / warning / alarm. A state rises as soon as a test crosses its level; at each alarm
level reached the subject's statistics restart from 0, so that the state clears `clear_after_boards`
consecutive boards after the change ended (every test below its warning level meanwhile).
Attribution: the capture is updated before the connectors on each board; while the capture is
not ok, connector tests keep running but no connector raises its own state (its reason says it
follows the capture change), connector states raised in the last `FOLD_BACK_BOARDS` boards
before the capture left ok are folded back to ok, and connector statistics restart when the
capture is ok again. So a lamp, a lens or a bumped camera is one capture state, not nine.
Only boards that were scored count: a repeat (`duplicate_of`) or a connector's
ERROR / NOT_DECIDABLE row does not. Not thread-safe: its caller serialises the boards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.contracts.clock import utc_now
from edge_agent.drift.capture_watch import CaptureWatch
from edge_agent.drift.connector_watch import ConnectorWatch, ModelReference

CAPTURE = "capture"
STATES = ("ok", "warning", "alarm")
FOLD_BACK_BOARDS = 30
SCORED = ("OK", "NOK")
FOLLOWS = "follows the capture change"
STATE_ROW_EVERY = 5  # history rows per state row (the statistics a restart takes up)

Watch = ConnectorWatch | CaptureWatch


@dataclass(slots=True)
class SubjectState:
    """A subject's current state: the columns of `drift_states`, and what clears it."""

    subject: str
    state: str = "ok"
    reason: str = ""
    since: str = field(default_factory=utc_now)
    measure: str | None = None
    statistic: float = 0.0
    value: float | None = None
    reference: float | None = None
    boards: int = 0
    result_id: str | None = None
    model_version: str | None = None
    quiet: int = 0  # consecutive boards with every test below its warning level
    raised_at: int | None = None  # the subject's board count when its state last rose

    def summary(self) -> dict[str, Any]:
        """The /readyz and retained status entry."""
        return {
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "measure": self.measure,
            "statistic": round(self.statistic, 4),
        }

    def row(self, detail: dict[str, Any] | None) -> dict[str, Any]:
        """The `drift_states` row, `detail` holding the watch's statistics as JSON; without
        `detail`, the columns a history row takes."""
        columns = {
            "subject": self.subject,
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "measure": self.measure,
            "statistic": self.statistic,
            "value": self.value,
            "reference": self.reference,
            "boards": self.boards,
            "result_id": self.result_id,
            "model_version": self.model_version,
        }
        if detail is None:
            return columns
        extra = {"quiet": self.quiet, "raised_at": self.raised_at}
        return columns | {"detail": json.dumps(detail | extra, separators=(",", ":"))}


@dataclass(frozen=True, slots=True)
class Change:
    """What one board (or a model install) did to a subject: a row to write, maybe published."""

    row: dict[str, Any]  # the subject's columns; `detail` only when its state row is due
    changed: bool  # the state changed: publish it
    history: bool  # a history row is due (every `history_every` boards, and every change)

    @property
    def state_row(self) -> bool:
        """A `drift_states` row is due: at each change, and with every `STATE_ROW_EVERY`th
        history row."""
        return "detail" in self.row


class DriftMonitor:
    """One state per subject; `board` feeds a verdict, `models` follows installed versions."""

    def __init__(
        self,
        settings: Any,
        reference_of: Callable[[str], ModelReference | None],
        capture_reference: tuple[str, dict[str, float]],
        connectors: list[str],
        saved: dict[str, dict[str, Any]],
    ) -> None:
        """`saved`: the `drift_states` rows of the last run, taken up where they still apply
        (the same model version; the same reference image for the capture)."""
        self.settings = settings
        self._clear_after = settings.clear_after_boards
        self._history_every = settings.history_every
        self.reference_of = reference_of
        self.watches: dict[str, Watch] = {}
        self.states: dict[str, SubjectState] = {}
        sha, image = capture_reference
        self._start(CAPTURE, CaptureWatch(sha, image, settings), saved.get(CAPTURE), sha)
        for connector in connectors:
            reference = reference_of(connector)
            if reference is not None:
                watch = ConnectorWatch(connector, reference, settings)
                self._start(connector, watch, saved.get(connector), reference.version)

    def _start(self, subject: str, watch: Watch, row: dict | None, key: str) -> None:
        self.watches[subject] = watch
        detail = json.loads(row["detail"]) if row and row.get("detail") else {}
        same = detail.get("version", detail.get("reference_sha256")) == key
        if row is not None and same:
            watch.restore(detail)
            fields = {k: row[k] for k in ("state", "reason", "since", "measure", "statistic")}
            fields |= {k: row[k] for k in ("value", "reference", "boards", "result_id")}
            self.states[subject] = SubjectState(
                subject,
                **fields,
                model_version=row.get("model_version"),
                quiet=int(detail.get("quiet", 0)),
                raised_at=detail.get("raised_at"),
            )
            return
        version = None if subject == CAPTURE else key
        self.states[subject] = SubjectState(
            subject, reason=watch.describe(None), model_version=version
        )

    def summaries(self) -> dict[str, dict[str, Any]]:
        """subject -> {state, reason, since, measure, statistic}; the statistic as it is now
        (the row's is the one at its last write)."""
        return {
            subject: {**state.summary(), "statistic": round(self.watches[subject].level()[2], 4)}
            for subject, state in self.states.items()
        }

    def rows(self) -> list[dict[str, Any]]:
        """Every subject's `drift_states` row."""
        return [self._row(subject) for subject in self.states]

    def _row(self, subject: str, detail: bool = True) -> dict[str, Any]:
        state, watch = self.states[subject], self.watches[subject]
        if not detail:
            return state.row(None)
        return state.row({**watch.detail(), "warning_level": watch.warning_level(state.measure)})

    # -- per board ------------------------------------------------------------------------
    def board(self, verdict: dict[str, Any], capture: dict[str, float] | None) -> list[Change]:
        """Feed one journaled verdict; the subjects whose row is due, changed ones marked."""
        if verdict.get("duplicate_of"):
            return []
        result_id = verdict.get("result_id")
        changes: dict[str, Change] = {}
        if capture is not None:
            watch = self.watches[CAPTURE]
            was = self.states[CAPTURE].state
            change = self._follow(CAPTURE, watch.update(capture), result_id, held=False)
            if change is not None:
                changes[CAPTURE] = change
            now = self.states[CAPTURE].state
            if was == "ok" and now != "ok":
                changes |= self._fold_back()
            elif was != "ok" and now == "ok":
                for subject, other in self.watches.items():
                    if subject != CAPTURE:
                        other.reset()
        held = self.states[CAPTURE].state != "ok"
        watches, follow = self.watches, self._follow
        for row in verdict.get("connectors", ()):
            score, evaluation = row.get("score"), row.get("evaluation")
            if score is None or evaluation not in SCORED:
                continue
            subject = row.get("id")
            version = (row.get("model") or {}).get("version")
            watch = watches.get(subject)
            if not (isinstance(watch, ConnectorWatch) and watch.version == version):
                if not self._take_up(subject, version, changes):
                    continue
                watch = watches[subject]
            change = follow(subject, watch.update(score, evaluation == "NOK"), result_id, held)  # type: ignore[call-arg]
            if change is not None:
                changes[subject] = change
        return list(changes.values())

    def _take_up(self, subject: str, version: str | None, changes: dict[str, Change]) -> bool:
        """Whether a row of `version`, not its watch's, counts for `subject`: it does if that
        version is the one installed now (its watch then starts afresh)."""
        reference = self.reference_of(subject)
        if reference is None or reference.version != version:
            return False  # a board scored by a model swapped out meanwhile
        changes[subject] = self._new_model(subject, reference)
        return True

    def _follow(self, subject: str, level: int, result_id: str | None, held: bool) -> Change | None:
        """Raise, hold or clear the subject's state after its watch took one board and put
        its tests at `level`; its change if a row is due. The common case (ok, quiet, no row
        due) costs a few operations."""
        watch, state = self.watches[subject], self.states[subject]
        state.boards = watch.boards
        changed = False
        if level == 0:
            state.quiet += 1
            if state.state != "ok" and state.quiet >= self._clear_after:
                self._clear(subject, result_id)
                changed = True
        else:
            state.quiet = 0
            _, measure, state.statistic = watch.level()
            if level > STATES.index(state.state):
                if held:
                    state.reason = f"{watch.describe(measure)}: {FOLLOWS}"
                else:
                    self._raise(subject, level, measure, result_id)
                    changed = True
            if level == 2:
                watch.reset()  # restarted at each alarm: cleared soon after the change ended
        due = changed or watch.boards % self._history_every == 0
        if not due:
            return None
        if level == 0:
            state.statistic = watch.level()[2]
            if state.state == "ok" and not changed and not state.reason.endswith(FOLLOWS):
                state.reason = watch.describe(None)
        rows_due = changed or watch.boards % (self._history_every * STATE_ROW_EVERY) == 0
        return Change(self._row(subject, rows_due), changed, due)

    def _raise(self, subject: str, level: int, measure: str | None, result_id: str | None) -> None:
        watch, state = self.watches[subject], self.states[subject]
        value, reference = watch.value_reference(measure)
        state.state, state.since, state.measure = STATES[level], utc_now(), measure
        state.reason, state.value, state.reference = watch.describe(measure), value, reference
        state.result_id, state.raised_at = result_id, watch.boards

    def _clear(self, subject: str, result_id: str | None) -> None:
        watch, state = self.watches[subject], self.states[subject]
        state.state, state.since, state.result_id = "ok", utc_now(), result_id
        state.reason = f"{watch.describe(None)}; back within bounds for {state.quiet} boards"
        state.measure, state.value, state.reference, state.raised_at = None, None, None, None
        watch.reset()

    def _fold_back(self) -> dict[str, Change]:
        """Connector states raised in the last few boards before the capture left ok: ok."""
        changes = {}
        for subject, state in self.states.items():
            watch = self.watches[subject]
            if subject == CAPTURE or state.state == "ok" or state.raised_at is None:
                continue
            if watch.boards - state.raised_at <= FOLD_BACK_BOARDS:
                state.state, state.since = "ok", utc_now()
                state.reason = f"{state.reason}: {FOLLOWS}"
                state.measure, state.raised_at, state.quiet = None, None, 0
                changes[subject] = Change(self._row(subject), True, True)
        return changes

    # -- models ---------------------------------------------------------------------------
    def models(self, versions: dict[str, str]) -> list[Change]:
        """Follow the installed versions (connector -> version): a new version's connector
        starts again at ok with a fresh reference."""
        changes = []
        for subject, version in versions.items():
            watch = self.watches.get(subject)
            if isinstance(watch, ConnectorWatch) and watch.version == version:
                continue
            reference = self.reference_of(subject)
            if reference is not None and reference.version == version:
                changes.append(self._new_model(subject, reference))
        return changes

    def _new_model(self, subject: str, reference: ModelReference) -> Change:
        watch = ConnectorWatch(subject, reference, self.settings)
        self.watches[subject] = watch
        self.states[subject] = SubjectState(
            subject,
            reason=f"{subject}: model {reference.version} installed, reference reset; "
            + watch.describe(None),
            model_version=reference.version,
        )
        return Change(self._row(subject), True, True)
