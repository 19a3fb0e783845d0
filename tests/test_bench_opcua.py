"""`bench --opcua-clients`: the pairs' summary (ratios, median, every client's events) and the
command's refusal of a pair count below one."""

from __future__ import annotations

import pytest

from edge_agent.cli import main
from trainer.benches.opcua_pairs import pairs_table, summarize_pairs


def run(p50: float, p99: float, rate: float) -> dict:
    return {"latency_ms_p50": p50, "latency_ms_p99": p99, "boards_per_s": rate}


def received(*events: int) -> dict:
    clients = [
        {"subscribed": True, "events": n, "seq_breaks": 0, "counter_changes": n, "last_counter": n}
        for n in events
    ]
    return {"clients": clients, "failed": []}


def test_pairs_give_each_ratio_their_median_and_whether_every_client_got_every_board() -> None:
    pairs = [
        {"without": run(40.0, 60.0, 9.0), "with": run(42.0, 61.0, 8.9), "received": received(5, 5)},
        {"without": run(50.0, 70.0, 9.1), "with": run(50.0, 75.0, 9.0), "received": received(5, 5)},
        {"without": run(40.0, 60.0, 9.2), "with": run(40.4, 66.0, 9.1), "received": received(5, 4)},
    ]
    summary = summarize_pairs(pairs, clients=2, boards=5)
    assert [r["p50_ratio"] for r in summary["pairs"]] == [1.05, 1.0, 1.01]
    assert summary["median_p50_ratio"] == 1.01
    assert [r["every_client_every_board"] for r in summary["pairs"]] == [True, True, False]
    assert summary["every_client_every_board"] is False
    table = pairs_table(summary)
    assert "4..5 of 5" in table and "every client every board's event: NO" in table
    missing = {**pairs[0], "received": received(5)}  # a client that never reported
    assert summarize_pairs([missing], clients=2, boards=5)["every_client_every_board"] is False


def test_bench_refuses_zero_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--opcua-clients", "2", "--pairs", "0"])
    assert "--pairs: 0: must be 1 or more" in capsys.readouterr().err
