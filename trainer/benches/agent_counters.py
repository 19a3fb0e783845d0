"""The agent's own counters during a bench, read off its /metrics: stage times, the drift
monitor's CPU time and the boards, so that a bench can report them per board over the whole run
or over a later part of it (the one-off costs of a start left out)."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class AgentCounters:
    """What the agent's /metrics has counted so far: each stage's summed seconds and count
    (`edge_inspect_stage_seconds`), the drift monitor's CPU seconds by stage
    (`edge_inspect_drift_cpu_seconds`) and the boards (`edge_inspect_boards`); empty: nothing
    counted yet."""

    stage_sums: dict[str, float] = field(default_factory=dict)
    stage_counts: dict[str, float] = field(default_factory=dict)
    drift_cpu: dict[str, float] = field(default_factory=dict)
    boards: float = 0.0

    @classmethod
    def read(cls, health_port: int) -> AgentCounters:
        url = f"http://127.0.0.1:{health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode("utf-8")
        counters = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if family.name == "edge_inspect_stage_seconds":
                    stage = sample.labels.get("stage", "")
                    if sample.name.endswith("_sum"):
                        counters.stage_sums[stage] = sample.value
                    elif sample.name.endswith("_count"):
                        counters.stage_counts[stage] = sample.value
                elif sample.name == "edge_inspect_drift_cpu_seconds_total":
                    counters.drift_cpu[sample.labels["stage"]] = sample.value
                elif sample.name == "edge_inspect_boards_total":
                    counters.boards += sample.value
        return counters

    def stage_means_ms(self) -> dict[str, float]:
        """Mean time per board of each stage, over the run so far."""
        return {
            stage: round(1000 * total / self.stage_counts[stage], 3)
            for stage, total in sorted(self.stage_sums.items())
            if self.stage_counts.get(stage)
        }

    def drift_cpu_ms(self, since: AgentCounters | None = None) -> dict[str, float]:
        """The drift monitor's CPU time per board by stage, with the total: over the run so far,
        or over the boards since `since`."""
        before = since or AgentCounters()
        boards = self.boards - before.boards
        if boards <= 0:
            return {}
        parts = {
            part: 1000 * (seconds - before.drift_cpu.get(part, 0.0)) / boards
            for part, seconds in sorted(self.drift_cpu.items())
        }
        return {k: round(v, 3) for k, v in {**parts, "total": sum(parts.values())}.items()}
