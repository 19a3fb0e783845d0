"""The demo's station and models, made when missing (shared by the demo and the benches)."""

from __future__ import annotations

from pathlib import Path

from edge_agent.contracts.bundle import active_dir
from trainer.demo.synth.station import generate_station
from trainer.settings import load_config
from trainer.train_all import train_all, write_summary


def ensure_station(station: Path, seed: int, boards: int) -> None:
    if not (station / "config.toml").is_file():
        print(f"generating station (seed {seed}, {boards} boards) in {station}")
        generate_station(station, seed=seed, boards=boards)


def ensure_models(station: Path, retrain: bool) -> None:
    config = load_config(station / "config.toml")
    missing = [c for c in config.connectors if active_dir(config.paths.models, c) is None]
    if missing or retrain:
        print(f"training {len(config.connectors)} connector models")
        rows = train_all(station / "crops", config.paths.models, config.training)
        print(write_summary(config.paths.models, rows))
