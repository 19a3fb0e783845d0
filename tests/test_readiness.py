"""Readiness reasons: each in plain words with its remedy, logged once per change, counted in the
metrics; the broker's refusal and a long outage seen by a real MQTT link on a real mosquitto."""

from __future__ import annotations

from pathlib import Path

from mqtt_broker import MosquittoBroker, wait_until
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from edge_agent.comms.link_health import link_reasons
from edge_agent.comms.mqtt_link import MqttLink
from edge_agent.contracts.config import MqttSettings
from edge_agent.ops.readiness import ReadinessWatch, Reason, assess
from edge_agent.ops.station_reasons import connector_reasons, storage_reasons
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.journal import Journal

PREFIX = "plant/line3/aoi2"
REFUSED = Reason("mqtt_refused", "the broker refuses anonymous access", "set mqtt.username")
NO_MODEL = Reason("model_missing", "connector J3 has no loadable model", "train it")


def gauges(telemetry: Telemetry) -> dict[tuple[str, str], float]:
    """(sample name, code label) -> value of the readiness gauges."""
    text = generate_latest(telemetry.registry).decode()
    return {
        (sample.name, sample.labels.get("code", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("edge_inspect_ready", "edge_inspect_not_ready_reason")
    }


def test_each_reason_is_logged_once_when_it_appears_and_once_when_it_clears() -> None:
    telemetry = Telemetry()
    watch = ReadinessWatch(telemetry)
    with capture_logs() as logs:
        assert watch.follow([REFUSED]) is True
        assert watch.follow([REFUSED]) is False
        assert watch.follow([REFUSED, NO_MODEL]) is True
        assert watch.follow([NO_MODEL]) is True
        assert watch.follow([]) is True
        assert watch.follow([]) is False
    events = [(e["event"], e.get("code")) for e in logs]
    assert events == [
        ("not_ready", "mqtt_refused"),
        ("not_ready", "model_missing"),
        ("not_ready_cleared", "mqtt_refused"),
        ("not_ready_cleared", "model_missing"),
        ("ready_again", None),
    ]
    assert logs[0]["remedy"] == "set mqtt.username"


def test_the_gauges_say_ready_and_count_each_code_that_holds() -> None:
    telemetry = Telemetry()
    watch = ReadinessWatch(telemetry)
    assert gauges(telemetry) == {("edge_inspect_ready", ""): 0.0}  # nothing assessed yet
    assert watch.follow([]) is True
    assert gauges(telemetry) == {("edge_inspect_ready", ""): 1.0}
    other = Reason("model_missing", "connector J4 has no loadable model", "train it")
    watch.follow([REFUSED, NO_MODEL, other])
    assert gauges(telemetry) == {
        ("edge_inspect_ready", ""): 0.0,
        ("edge_inspect_not_ready_reason", "mqtt_refused"): 1.0,
        ("edge_inspect_not_ready_reason", "model_missing"): 2.0,
    }
    watch.follow([])
    assert gauges(telemetry) == {
        ("edge_inspect_ready", ""): 1.0,
        ("edge_inspect_not_ready_reason", "mqtt_refused"): 0.0,
        ("edge_inspect_not_ready_reason", "model_missing"): 0.0,
    }


def test_a_check_that_fails_is_a_reason_not_a_ready_station() -> None:
    def broken() -> list[Reason]:
        raise KeyError("journal")

    reasons = assess([lambda: [NO_MODEL], broken])
    assert [r.code for r in reasons] == ["model_missing", "check_failed"]
    assert "KeyError" in reasons[1].reason


def test_no_enabled_connector_and_a_connector_without_model_are_reasons() -> None:
    [none] = connector_reasons([], {}, {})
    assert none.code == "no_connector" and "[connectors" in none.remedy
    [missing] = connector_reasons(
        ["J1", "J3"], {"J1": {}}, {"J3": "models/J3/active: no active model"}
    )
    assert missing.code == "model_missing"
    assert "J3" in missing.reason and "models/J3/active: no active model" in missing.reason
    assert "connectors.J3.enabled = false" in missing.remedy
    assert connector_reasons(["J1"], {"J1": {}}, {}) == []


def test_a_refused_model_of_another_connector_or_size_is_a_mismatch() -> None:
    error = (
        "models/J3/2026-01-02.1: does not fit its connector: the manifest's input is 60x40 "
        "(width x height), connectors.J3.box cuts 50x30"
    )
    [mismatch] = connector_reasons(["J3"], {}, {"J3": error})
    assert mismatch.code == "model_mismatch"
    assert "models/J3/2026-01-02.1" in mismatch.reason and "50x30" in mismatch.reason
    assert "models/J3/active" in mismatch.remedy


def test_a_failing_journal_and_a_low_disk_are_reasons() -> None:
    report = {
        "journal": "failing",
        "journal_error": "disk I/O error",
        "failing_since": "2026-12-06T05:00:00.000Z",
        "journal_backlog": 3,
        "free_bytes": 10,
        "min_free_bytes": 200 * 1024 * 1024,
    }
    codes = [(r.code, r.reason) for r in storage_reasons(report)]
    assert [c for c, _ in codes] == ["journal_failing", "disk_low"]
    assert "disk I/O error" in codes[0][1] and "200 MB" in codes[1][1]


def test_a_broker_refusing_anonymous_access_is_a_reason_with_the_credentials_remedy(
    secured: MosquittoBroker, journal: Journal, tmp_path: Path
) -> None:
    settings = MqttSettings(port=secured.port, prefix=PREFIX)
    link = MqttLink(settings, journal, "aoi2", 1, dict, {}, 1000)
    link.start()
    try:
        wait_until(lambda: link_reasons(link.health, settings, 0), what="a refusal")
        [reason] = link_reasons(link.health, settings, 0)
    finally:
        link.stop()
    assert reason.code == "mqtt_refused"
    assert "anonymous access" in reason.reason and "Not authorized" in reason.reason
    assert "mqtt.username" in reason.remedy and "mqtt.password_file" in reason.remedy


def test_the_right_password_clears_the_refusal(
    secured: MosquittoBroker, journal: Journal, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    settings = MqttSettings(
        port=secured.port, prefix=PREFIX, username="agent", password_file=tmp_path / "password"
    )
    link = MqttLink(settings, journal, "aoi2", 1, dict, {}, 1000)
    link.start()
    try:
        wait_until(lambda: link.connected, what="an authenticated connection")
        assert link_reasons(link.health, settings, 0.0) == []
    finally:
        link.stop()


def test_a_broker_out_of_reach_longer_than_the_setting_is_a_reason(
    broker: MosquittoBroker, journal: Journal
) -> None:
    settings = MqttSettings(port=broker.port, prefix=PREFIX)
    link = MqttLink(settings, journal, "aoi2", 1, dict, {}, 1000)
    link.start()
    try:
        wait_until(lambda: link.connected, what="a connection")
        assert link_reasons(link.health, settings, 0.5) == []
        broker.stop()
        wait_until(lambda: link_reasons(link.health, settings, 0.5), what="the outage reason")
        [reason] = link_reasons(link.health, settings, 0.5)
        assert reason.code == "mqtt_unreachable"
        assert f"127.0.0.1:{broker.port}" in reason.reason and "since 20" in reason.reason
        assert link_reasons(link.health, settings, 0) == []  # 0: an outage never counts
        broker.start()
        wait_until(lambda: not link_reasons(link.health, settings, 0.5), 30, "the reconnect")
    finally:
        link.stop()
