"""The [retrain] and [retention] settings, and confirmation payloads as the MES sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.comms.confirmations import Confirmation, parse_confirmation
from edge_agent.contracts.config import ConfigError
from trainer.settings import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_run_nightly_in_shadow_and_keep_a_month_of_crops(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))

    assert config.retrain.schedule == "0 2 * * *"
    assert config.retrain.misfire_grace_s == 6 * 3600
    assert (config.retrain.rollout, config.retrain.nice, config.retrain.seed_data) == (
        "shadow",
        10,
        None,
    )
    assert (config.retention.keep_crops, config.retention.max_age_days) == (True, 30)
    assert config.retention.max_disk_mb == 2000


def test_seed_data_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[retrain]\nseed_data = "station/crops"\n'))

    assert config.retrain.seed_data == tmp_path / "station" / "crops"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[retrain]\nschedule = "0 2 * *"\n', "5-field cron"),
        ('[retrain]\nrollout = "yolo"\n', "retrain.rollout"),
        ("[retrain]\nfalse_reject_tolerance = -0.1\n", "false_reject_tolerance"),
        ("[retention]\nkeep = true\n", "unknown key 'retention.keep'"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_environment_overrides_the_rollout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGE_INSPECT_RETRAIN__ROLLOUT", "auto")

    assert load_config(write(tmp_path, '[retrain]\nrollout = "shadow"\n')).retrain.rollout == "auto"


def test_confirmation_payload_is_read_with_its_optional_parts() -> None:
    full = parse_confirmation(
        b'{"result_id": "R1", "connector": "J2", "label": "ko", "by": "mes",'
        b' "at": "2026-09-01T10:00:00Z"}'
    )
    board = parse_confirmation(b'{"result_id": "R1", "label": "OK", "by": "line 3 operator"}')

    assert full == Confirmation("R1", "J2", "KO", "mes", "2026-09-01T10:00:00Z")
    assert board == Confirmation("R1", None, "OK", "line 3 operator")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"OK", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"result_id": "R1", "label": "maybe", "by": "mes"}', "label 'maybe'"),
        (b'{"result_id": "R1", "label": "OK"}', "'by'"),
        (b'{"result_id": "", "label": "OK", "by": "mes"}', "result_id"),
        (b'{"result_id": "R1", "label": "OK", "by": "mes", "extra": 1}', "unknown keys"),
    ],
)
def test_bad_confirmation_payloads_say_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_confirmation(payload)
