"""Training options shared by `train`, `train-all` and the retraining job, and error handling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from edge_agent.contracts.config import ConfigError
from edge_agent.ops.logs import configure_logging
from trainer.export import ExportError
from trainer.settings import TrainingSettings, load_config
from trainer.train_all import USER_ERRORS

_FLAGS = {
    "method": str,
    "mask": str,
    "backbone": str,
    "backbone_weights": Path,
    "input_size": int,
    "coreset_ratio": float,
    "coreset_max": int,
    "padim_dims": int,
    "ae_epochs": int,
    "ae_patience": int,
    "ae_batch": int,
    "ead_steps": int,
    "ead_patience": int,
    "ead_batch": int,
    "target_false_reject": float,
    "seed": int,
}


def add_training_arguments(parser: argparse.ArgumentParser, *, installs: bool = True) -> None:
    """Options that override the [training] section of a station config; `installs` adds
    --no-activate, for commands whose bundles need not go live."""
    parser.add_argument("--config", type=Path, help="station config whose [training] to start from")
    for name, kind in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--gray", dest="color_mode", action="store_const", const="gray")
    colour.add_argument("--rgb", dest="color_mode", action="store_const", const="rgb")
    parser.add_argument("--roi-file", type=Path, help='JSON {"conn1": [y1, y2, x1, x2]}')
    if installs:
        parser.add_argument("--no-activate", action="store_true", help="install without activating")


def training_settings(args: argparse.Namespace) -> TrainingSettings:
    """The config's [training] (or defaults, with env overrides) updated by command-line flags."""
    base = load_config(args.config).training
    changes = {k: getattr(args, k) for k in (*_FLAGS, "color_mode") if getattr(args, k, None)}
    if args.roi_file:
        changes["roi_file"] = args.roi_file
    try:
        return TrainingSettings.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:  # a bad flag value (e.g. --method) is a one-line user error
        raise ConfigError("\n".join(map(_flag_error, exc.errors()))) from None


def _flag_error(error: Any) -> str:
    """One pydantic error about a training setting, named as its command-line flag."""
    flag = "--" + ".".join(map(str, error["loc"])).replace("_", "-")
    return f"{flag}: {error['msg']} (got {error.get('input')!r})"


def run_guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; user errors print one clear line and exit 2, export failures 1."""
    configure_logging()
    try:
        return body()
    except USER_ERRORS as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        structlog.get_logger().error("export refused", error=str(exc))
        return 1
