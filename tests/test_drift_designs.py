"""The stored Bernoulli CUSUM designs: every grid rate of the default ARLs, equal to a fresh
solve, and used by `bernoulli_design` without solving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.contracts.config import DriftSettings
from edge_agent.drift import cusum
from edge_agent.drift.design_table import grid_rates, solved_row

ARLS = DriftSettings().warning_arl_boards, DriftSettings().alarm_arl_boards


def stored_rows() -> list[dict]:
    return json.loads(cusum.STORED_DESIGNS.read_text(encoding="utf-8"))["designs"]


def test_the_table_covers_every_grid_rate_at_the_default_arls() -> None:
    rows = stored_rows()
    assert [r["p0"] for r in rows] == grid_rates()
    assert {(r["warning_arl"], r["alarm_arl"]) for r in rows} == {ARLS}


@pytest.mark.parametrize("p0", [0.005, 0.02, 0.145, 0.5])
def test_stored_thresholds_are_the_solved_ones(p0: float) -> None:
    (stored,) = [r for r in stored_rows() if r["p0"] == p0]
    assert stored == solved_row(p0, *ARLS)


@pytest.fixture
def solves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The rates `bernoulli_design` solves (not read) from here on; caches cleared around."""
    solved: list[float] = []
    real = cusum.solve_design

    def counting(p0: float, *args: float) -> cusum.BernoulliDesign:
        solved.append(p0)
        return real(p0, *args)

    monkeypatch.setattr(cusum, "solve_design", counting)
    cusum._stored_designs.cache_clear()
    cusum._bernoulli_design.cache_clear()
    yield solved
    cusum._stored_designs.cache_clear()
    cusum._bernoulli_design.cache_clear()


def test_a_default_design_is_read_and_another_arl_is_solved(solves: list[float]) -> None:
    read = cusum.bernoulli_design(0.013, *ARLS)
    assert solves == [] and read.p0 == 0.015
    assert (read.warning, read.alarm) == tuple(
        solved_row(0.015, *ARLS)[k] for k in ("warning", "alarm")
    )
    cusum.bernoulli_design(0.013, 1e4, 1e5)
    assert solves == [0.015]


def test_an_unreadable_table_leaves_every_design_to_be_solved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, solves: list[float]
) -> None:
    broken = tmp_path / "bernoulli_designs.json"
    broken.write_text('{"designs": [{"p0": 0.005', encoding="utf-8")  # cut short
    monkeypatch.setattr(cusum, "STORED_DESIGNS", broken)
    design = cusum.bernoulli_design(0.005, *ARLS)
    assert solves == [0.005]
    assert (design.warning, design.alarm) == tuple(
        solved_row(0.005, *ARLS)[k] for k in ("warning", "alarm")
    )
