"""Boards that failed to journal: retried oldest first until they go through; nothing overtakes."""

from __future__ import annotations

import threading

from mqtt_broker import wait_until

from edge_agent.store.journal_retry import JournalRetry


def test_stalled_boards_are_retried_in_arrival_order_and_later_ones_wait_behind_them() -> None:
    journal_works = threading.Event()
    journaled: list[str] = []
    backlog: list[int] = []

    def attempt(board: str) -> None:
        if not journal_works.is_set():
            raise OSError(28, "No space left on device")
        journaled.append(board)

    retry: JournalRetry[str] = JournalRetry(attempt, max_delay_s=0.05, backlog=backlog.append)
    retry.start()
    retry.stall(2, "SN2")  # two workers failing out of order
    retry.stall(1, "SN1")
    later: list[bool] = []
    worker = threading.Thread(target=lambda: later.append(retry.wait_turn()))
    worker.start()
    worker.join(0.3)

    assert worker.is_alive() and not journaled  # the later board waits behind them
    journal_works.set()
    worker.join(10)
    assert journaled == ["SN1", "SN2"] and later == [True]
    assert len(retry) == 0 and backlog[-1] == 0 and max(backlog) == 2
    assert retry.stop() == 0


def test_stopping_releases_waiting_workers_and_leaves_the_stalled_boards() -> None:
    def attempt(board: str) -> None:
        raise OSError(5, "Input/output error")

    retry: JournalRetry[str] = JournalRetry(attempt, max_delay_s=0.05)
    retry.start()
    retry.stall(1, "SN1")
    waited: list[bool] = []
    worker = threading.Thread(target=lambda: waited.append(retry.wait_turn()))
    worker.start()

    assert retry.stop() == 1
    wait_until(lambda: waited == [False], 10, "the waiting worker released")
    assert not retry.is_alive()
