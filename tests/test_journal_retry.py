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


def test_an_input_without_progress_is_given_up_and_the_boards_behind_it_go_on() -> None:
    journaled: list[str] = []
    given_up: list[tuple[str, str]] = []

    def attempt(board: str) -> None:
        if board == "odd":
            raise ValueError("this one input cannot be finished")
        journaled.append(board)

    def give_up(board: str, error: Exception) -> bool:
        given_up.append((board, str(error)))
        return True

    retry: JournalRetry[str] = JournalRetry(
        attempt, max_delay_s=0.05, give_up_after_s=0.2, give_up=give_up
    )
    retry.start()
    retry.stall(1, "odd")
    retry.stall(2, "SN2")
    assert retry.wait_turn()  # released once the odd one is given up

    assert given_up == [("odd", "this one input cannot be finished")]
    wait_until(lambda: journaled == ["SN2"], 10, "the board behind it")
    assert len(retry) == 0 and retry.stuck is None
    retry.stop()


def test_a_full_disk_keeps_waiting_and_a_failed_give_up_names_the_stuck_input() -> None:
    answers = {"full": False}  # `give_up` answers False: the journal takes no write at all
    asked: list[str] = []

    def attempt(board: str) -> None:
        raise OSError(28, "No space left on device")

    def give_up(board: str, error: Exception) -> bool:
        asked.append(board)
        if board in answers:
            return answers[board]
        raise OSError(30, "Read-only file system")

    retry: JournalRetry[str] = JournalRetry(
        attempt, max_delay_s=0.05, give_up_after_s=0.1, give_up=give_up, describe=str.upper
    )
    retry.start()
    retry.stall(1, "full")
    wait_until(lambda: asked.count("full") >= 3, 10, "give-up asked again while the disk is full")
    assert len(retry) == 1 and retry.stuck is None  # waiting, not stuck
    assert retry.stop() == 1

    retry = JournalRetry(
        attempt, max_delay_s=0.05, give_up_after_s=0.1, give_up=give_up, describe=str.upper
    )
    retry.start()
    retry.stall(1, "odd")
    wait_until(lambda: retry.stuck is not None, 10, "the input named stuck")
    stuck = retry.stuck
    assert stuck is not None and stuck["input"] == "ODD"
    assert "giving it up failed: [Errno 30] Read-only file system" in stuck["reason"]
    assert len(retry) == 1  # still first in line: a restart is what is left
    assert retry.stop() == 1
