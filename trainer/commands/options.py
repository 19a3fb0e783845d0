"""Training options shared by `train`, `train-all` and the retraining job, and error handling."""

from __future__ import annotations

import argparse
import operator
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import structlog
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from edge_agent.contracts.config import ConfigError
from edge_agent.ops.logs import configure_logging
from trainer.export import ExportError
from trainer.settings import TrainingSettings, load_config
from trainer.train_all import USER_ERRORS

_FLAGS = (
    "method",
    "mask",
    "backbone",
    "backbone_weights",
    "input_size",
    "input_size_max",
    "coreset_ratio",
    "coreset_max",
    "coreset_radius_share",
    "padim_dims",
    "ae_epochs",
    "ae_patience",
    "ae_batch",
    "ead_steps",
    "ead_patience",
    "ead_batch",
    "target_false_reject",
    "seed",
)
_BOUNDS = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}


def _bounds(field: FieldInfo) -> list[tuple[str, Any]]:
    """A setting's range as (name, limit) pairs: ("ge", 1), ("lt", 1.0)."""
    return [
        (name, getattr(rule, name))
        for rule in field.metadata
        for name in _BOUNDS
        if getattr(rule, name, None) is not None
    ]


def _checked(name: str, field: FieldInfo) -> Callable[[str], Any]:
    """An argparse `type` that parses a flag as its setting's type and checks its range."""
    kind = field.annotation if field.annotation in (int, float) else Path
    limits = _bounds(field)
    holds = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}

    def parse(text: str) -> Any:
        value = kind(text)
        if any(not holds[rule](value, limit) for rule, limit in limits):
            raise argparse.ArgumentTypeError(f"{text} is out of range: {_range_text(limits)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _range_text(limits: list[tuple[str, Any]]) -> str:
    return ", ".join(f"{_BOUNDS[rule]} {limit}" for rule, limit in limits)


def _flag_help(name: str, field: FieldInfo) -> str:
    """What a flag does, its range and the config key it overrides (with its default)."""
    parts = [field.description or name.replace("_", " ")]
    if limits := _bounds(field):
        parts.append(_range_text(limits))
    default = "unset" if field.default is None else field.default
    return f"{'; '.join(parts)} (overrides training.{name}, default {default})"


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends each option with its default, where it has one (not None or a flag's
    False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if any(action.default is none for none in (None, False, argparse.SUPPRESS)):
            return action.help
        return super()._get_help_string(action)


def add_training_arguments(parser: argparse.ArgumentParser, *, installs: bool = True) -> None:
    """Options that override the [training] section of a station config; `installs` adds
    --no-activate, for commands whose bundles need not go live."""
    parser.add_argument("--config", type=Path, help="station config whose [training] to start from")
    fields = TrainingSettings.model_fields
    for name in _FLAGS:
        field = fields[name]
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=None if choices else _checked(name, field),
            choices=choices,
            default=None,
            help=_flag_help(name, field),
        )
    colour = parser.add_mutually_exclusive_group()
    gray = "score crops in gray (overrides training.color_mode, default gray)"
    colour.add_argument("--gray", dest="color_mode", action="store_const", const="gray", help=gray)
    rgb = "score crops in colour (overrides training.color_mode)"
    colour.add_argument("--rgb", dest="color_mode", action="store_const", const="rgb", help=rgb)
    parser.add_argument(
        "--roi-file",
        type=Path,
        help='manual ROI per connector, JSON {"J1": [y1, y2, x1, x2]} '
        "(overrides training.roi_file)",
    )
    if installs:
        parser.add_argument("--no-activate", action="store_true", help="install without activating")


def training_settings(args: argparse.Namespace) -> TrainingSettings:
    """The config's [training] (or defaults, with env overrides) updated by command-line flags;
    a flag given as 0 counts like any other value."""
    base = load_config(args.config).training
    changes = {
        k: value for k in (*_FLAGS, "color_mode") if (value := getattr(args, k, None)) is not None
    }
    if args.roi_file is not None:
        changes["roi_file"] = args.roi_file
    try:
        return TrainingSettings.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:  # a bad flag value (e.g. --method) is a one-line user error
        raise ConfigError("\n".join(map(_flag_error, exc.errors()))) from None


def _flag_error(error: Any) -> str:
    """One pydantic error about a training setting, named as its command-line flag."""
    flag = "--" + ".".join(map(str, error["loc"])).replace("_", "-")
    return f"{flag}: {error['msg']} (got {error.get('input')!r})"


def add_work_folder_arguments(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    """The demo's work folder (`flag`, default `demo`; its station is generated and trained
    there when missing) and the seed of a station generated there; defaults shown in --help."""
    parser.formatter_class = DefaultsShown
    parser.add_argument(flag, type=Path, default=Path("demo"), help=help_text)
    parser.add_argument("--seed", type=int, default=0, help="seed of a station generated here")


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
