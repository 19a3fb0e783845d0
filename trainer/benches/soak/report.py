"""The soak's report: `soak.json` (every number) and `soak.md` (a short table)."""

from __future__ import annotations

import json
from pathlib import Path


def summary_lines(results: dict) -> list[str]:
    """The headline numbers, one line each, as printed and in `soak.md`."""
    inputs, verdicts, latency = results["inputs"], results["verdicts"], results["latency_ms"]
    settings = results["settings"]
    return [
        f"result: {'PASSED' if results['passed'] else 'FAILED'}",
        f"inputs sent: {inputs['sent']} ({inputs.get('drop', 0)} drop folder, "
        f"{inputs.get('mqtt', 0)} MQTT) at {inputs['rate_per_s']} boards/s "
        f"(asked {settings['rate']}) over {settings['duration_s']} s",
        f"verdicts received: {verdicts['received']} ({verdicts['distinct']} distinct, "
        f"{verdicts['redelivered']} QoS 1 redeliveries, {verdicts['historical']} historical, "
        f"{verdicts['repeats_of_known_content']} repeats of known content)",
        f"evaluations: {', '.join(f'{k} {v}' for k, v in sorted(verdicts['evaluations'].items()))}",
        f"lost: {results['lost']} | doubled: {results['doubled']} | seq gaps: "
        f"{results['seq_gaps']} | unexpected: {results['unexpected']}",
        f"journal rows: {results['journal']['rows']} for {inputs['sent']} inputs, in "
        f"{len(results['journal']['sessions'])} sessions",
        f"agent throughput: {results['agent_boards_per_s']} boards/s (first input to last "
        f"verdict); drained {results['drain_s']} s after the stream ended",
        "latency input -> verdict (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in latency.items()),
        f"agent exits not caused by the soak: {results['unexpected_agent_exits']}; "
        f"broker warnings of dropped messages: {results['broker_dropped_messages_warnings']}",
    ]


def markdown(results: dict) -> str:
    lines = ["# Soak run", "", *(f"- {line}" for line in summary_lines(results)), ""]
    lines += ["| at (s) | event | detail |", "|---:|---|---|"]
    lines += [f"| {e['at_s']:.1f} | {e['what']} | {e['detail']} |" for e in results["events"]]
    return "\n".join(lines) + "\n"


def write_reports(results: dict, folder: Path) -> tuple[Path, Path]:
    """Write `soak.json` and `soak.md` into `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "soak.json", folder / "soak.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results), encoding="utf-8")
    return json_path, md_path
