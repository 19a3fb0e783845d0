"""The training flags of `train`, `train-all` and `robustness`: values, ranges, help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trainer.commands.options import add_training_arguments, training_settings
from trainer.settings import TrainingSettings


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="edge-inspect train")
    add_training_arguments(built)
    return built


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_flag_set_to_zero_overrides_the_config(tmp_path: Path) -> None:
    station = config(tmp_path, "[training]\nseed = 7\nok_only_spread = 2.0\n")

    settings = training_settings(parser().parse_args(["--config", str(station), "--seed", "0"]))

    assert settings.seed == 0


def test_flags_left_out_keep_the_config(tmp_path: Path) -> None:
    station = config(tmp_path, "[training]\nseed = 7\nmethod = 'padim'\n")

    settings = training_settings(parser().parse_args(["--config", str(station)]))

    assert (settings.seed, settings.method) == (7, "padim")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--ae-epochs", "0"), ("--ae-epochs", "-1"), ("--coreset-ratio", "0"), ("--seed", "-3")],
)
def test_a_value_out_of_range_is_refused_naming_the_range(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([flag, value])

    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: {value} is out of range" in error
    assert "at least" in error or "above" in error


def test_an_unknown_method_is_refused_listing_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--method", "patchcor"])

    error = capsys.readouterr().err.replace("'", "")
    assert "invalid choice: patchcor (choose from patchcore, padim, autoencoder" in error


def test_help_says_what_each_training_flag_does_and_lists_the_choices() -> None:
    text = " ".join(parser().format_help().split())

    for method in ("patchcore", "padim", "autoencoder", "efficientad-s", "efficientad-m"):
        assert method in text
    assert "--method {patchcore,padim,autoencoder,efficientad-s,efficientad-m}" in text
    assert "--mask {uniform,variance}" in text
    assert "--backbone {efficientnet-lite0,resnet18,wide_resnet50_2}" in text
    assert "seed of every random choice in training; at least 0" in text
    assert "score crops in gray" in text and "score crops in colour" in text
    for action in parser()._actions:
        assert action.help, f"{action.option_strings} has no help"


def test_every_flag_names_the_setting_it_overrides() -> None:
    text = " ".join(parser().format_help().split()).replace("- ", "-")
    for name in TrainingSettings.model_fields:
        flag = "--" + name.replace("_", "-")
        if flag in text:
            assert f"training.{name}" in text
