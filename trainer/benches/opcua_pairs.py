"""`edge-inspect bench --opcua-clients N`: alternated pairs (agent without, then with the OPC UA
server and N clients) summed up as the agent's p50 ratio and what every client received."""

from __future__ import annotations

import statistics
from typing import Any


def summarize_pairs(pairs: list[dict[str, Any]], clients: int, boards: int) -> dict[str, Any]:
    """Per pair both p50s (and p99s, burst boards/s), the ratio with/without, the CPU time the
    server and the clients used per board, each client's events against the boards; the
    median ratio over the pairs. `pairs`: `{"without", "with"}`
    (bench_agent's results) and `"received"` (the clients' counts)."""
    rows = []
    for number, pair in enumerate(pairs, 1):
        without, with_ = pair["without"], pair["with"]
        readers = pair["received"].get("clients", [])
        events = [c["events"] for c in readers]
        used = pair["received"].get("cpu_s", {})
        rows.append(
            {
                "pair": number,
                "p50_ms_without": without["latency_ms_p50"],
                "p50_ms_with": with_["latency_ms_p50"],
                "p50_ratio": round(with_["latency_ms_p50"] / without["latency_ms_p50"], 3),
                "p99_ms_without": without["latency_ms_p99"],
                "p99_ms_with": with_["latency_ms_p99"],
                "boards_per_s_without": without["boards_per_s"],
                "cpu_ms_per_board": {k: round(1000 * s / boards, 2) for k, s in used.items()},
                "boards_per_s_with": with_["boards_per_s"],
                "events_per_client": events,
                "seq_breaks_per_client": [c["seq_breaks"] for c in readers],
                "counter_per_client": [c["last_counter"] for c in readers],
                "client_failures": pair["received"].get("failed", []),
                "every_client_every_board": len(events) == clients
                and all(n == boards for n in events),
            }
        )
    return {
        "clients": clients,
        "boards_per_run": boards,
        "pairs": rows,
        "median_p50_ratio": round(statistics.median(r["p50_ratio"] for r in rows), 3),
        "every_client_every_board": all(r["every_client_every_board"] for r in rows),
    }


def pairs_table(summary: dict[str, Any]) -> str:
    """The summary as a plain text table."""
    header = ("pair", "p50 without", "p50 with", "ratio", "p99 without", "p99 with",
              "boards/s without", "boards/s with", "CPU ms per board (server, clients)",
              "events per client")  # fmt: skip
    lines = [header]
    for r in summary["pairs"]:
        got = f"{min(r['events_per_client'], default=0)}..{max(r['events_per_client'], default=0)}"
        lines.append(
            (
                str(r["pair"]), f"{r['p50_ms_without']} ms", f"{r['p50_ms_with']} ms",
                f"{r['p50_ratio']:.3f}", f"{r['p99_ms_without']} ms", f"{r['p99_ms_with']} ms",
                str(r["boards_per_s_without"]), str(r["boards_per_s_with"]),
                " / ".join(f"{v:g}" for v in r["cpu_ms_per_board"].values()) or "-",
                f"{got} of {summary['boards_per_run']}",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    every = "yes" if summary["every_client_every_board"] else "NO"
    text.append(
        f"median p50 ratio (with / without) over {len(summary['pairs'])} pairs: "
        f"{summary['median_p50_ratio']:.3f}; {summary['clients']} clients, "
        f"every client every board's event: {every}"
    )
    return "\n".join(line.rstrip() for line in text)
