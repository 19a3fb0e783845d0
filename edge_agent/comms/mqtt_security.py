"""The broker credentials and TLS of an MQTT client, from `[mqtt]`: the agent's link and the
trainer's announcements connect the same way; a missing or unreadable file is a ConfigError
naming it."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent.contracts.config import ConfigError, MqttSettings, TlsSettings


def read_password(settings: MqttSettings) -> str | None:
    """The broker password: `password_file`, else $CREDENTIALS_DIRECTORY/mqtt_password."""
    if settings.password_file is not None:
        if not settings.username:
            raise ConfigError("mqtt.password_file is set but mqtt.username is empty")
        path, origin = Path(settings.password_file), "mqtt.password_file"
    elif settings.username and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / "mqtt_password"
        origin = "systemd credential mqtt_password"
    else:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the MQTT password ({origin}): {exc.strerror}"
        ) from None


def configure_tls(client: mqtt.Client, tls: TlsSettings) -> None:
    if not tls.enabled:
        return
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    for key, path in files.items():
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: mqtt.tls.{key} not found")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError("mqtt.tls: cert_file and key_file must be set together")
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(str(p) for p in files.values() if p is not None)
        raise ConfigError(f"mqtt.tls: cannot load {named}: {exc}") from None
