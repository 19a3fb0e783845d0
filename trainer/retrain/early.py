"""Early retraining on a drift alarm: which connectors to retrain now, and why.

While a connector's drift alarm is on, the console puts its crops since the alarm first in the
review queue (`drift.review_head_boards`). Once `drift.retrain_after_confirmed` of those crops
are confirmed, the connector is retrained at once instead of at the next scheduled run: the same
job, data assembly and gate as every run (nothing is promoted without the gate). One early run
per alarm: the alarm's start (`since`) is kept in `<state>/retrain/early_runs.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.console.journal_reader import JournalReader
from edge_agent.contracts.config import StationConfig
from edge_agent.store.crop_store import JOURNAL_FILE
from trainer.retrain.runs import read_early_runs


@dataclass(frozen=True)
class EarlyRetrain:
    """A connector whose drift alarm asks for an early retrain, and the reason in plain words."""

    connector: str
    since: str
    confirmed: int
    reason: str


def early_retrains(config: StationConfig) -> list[EarlyRetrain]:
    """The enabled connectors in drift alarm with at least `drift.retrain_after_confirmed` of
    their crops since the alarm confirmed, whose alarm has not had its early run yet."""
    if not config.drift.enabled:
        return []
    journal = JournalReader(config.paths.state / JOURNAL_FILE)
    done = read_early_runs(config)
    needed = config.drift.retrain_after_confirmed
    enabled = config.enabled_connectors()
    found = []
    for connector, since in journal.drift_alarms().items():
        if connector not in enabled or done.get(connector, {}).get("since") == since:
            continue
        confirmed = journal.confirmed_since(connector, since)
        if confirmed >= needed:
            reason = (
                f"drift alarm since {since}: {confirmed} of its crops inspected since then are "
                f"confirmed ({needed} ask for an early retrain)"
            )
            found.append(EarlyRetrain(connector, since, confirmed, reason))
    return found


def drift_alarm(config: StationConfig, connector: str) -> str | None:
    """The reason of the connector's drift alarm, or None when it has none."""
    state = JournalReader(config.paths.state / JOURNAL_FILE).drift_states().get(connector)
    return state.reason if state is not None and state.state == "alarm" else None
