"""The demo's station and models, made when missing (shared by the demo and the benches).

A station is generated only in a command's documented default folder (`OUT/station`); a
station the user names (`--station`) must exist with its models trained, or the command
refuses: a typo in a path never starts generating and training a whole station there.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.contracts.bundle import active_dir
from edge_agent.contracts.config import ConfigError
from trainer.settings import load_config
from trainer.synth.station import generate_station
from trainer.train_all import train_all, write_summary


def trained_station(station: Path) -> Path:
    """The config file of a named station (its folder or the file itself) whose enabled
    connectors all have an active model; ConfigError otherwise."""
    path = station / "config.toml" if station.is_dir() else station
    if not path.is_file():
        raise ConfigError(f"--station {station}: no station config found")
    config = load_config(path)
    models = config.paths.models
    untrained = [c for c in config.enabled_connectors() if active_dir(models, c) is None]
    if untrained:
        raise ConfigError(f"{path}: no active model for {', '.join(untrained)} (train-all first)")
    return path


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
