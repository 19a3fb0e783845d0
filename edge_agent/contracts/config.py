"""The station's settings: one schema, read from TOML with EDGE_INSPECT_* environment overrides."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_agent.contracts.names import SAFE_NAME, ConnectorId

ENV_PREFIX = "EDGE_INSPECT_"
MB = 1_000_000
"""Bytes in one of the `*_mb` settings."""


class ConfigError(ValueError):
    """A configuration the station cannot run with; the message names the file and the key."""


class Section(BaseModel):
    """A config section: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ConnectorSettings(Section):
    """One connector on the board: where it sits on the reference image."""

    box: tuple[int, int, int, int] = Field(description="x, y, width, height in reference pixels")
    enabled: bool = True

    @field_validator("box")
    @classmethod
    def _positive_size(cls, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x, y, w, h = box
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise ValueError(f"box {list(box)} needs x, y >= 0 and width, height > 0")
        return box

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the crop the box cuts: the input its model must take."""
        return self.box[3], self.box[2]


class StationSettings(Section):
    name: str = "line/aoi"
    reference_image: Path = Path("reference.png")
    camera: str = "cam1"


class LimitsSettings(Section):
    """Bounds on what the agent accepts, so a bad input cannot exhaust the line PC."""

    max_file_bytes: int = 50_000_000
    max_pixels: int = 40_000_000
    max_payload_bytes: int = 20_000_000


class RegistrationSettings(Section):
    max_features: int = 1000
    working_width: int = 640
    min_inliers: int = 25
    max_rotation_deg: float = 8.0
    max_shift_fraction: float = 0.15
    min_quality: float = 0.35
    max_scale_change: float = Field(default=0.08, ge=0.0, lt=1.0)
    max_outside_fraction: float = Field(default=0.01, ge=0.0, le=1.0)


class InputSettings(Section):
    drop_folders: dict[str, Path] = Field(default_factory=dict, description="camera -> folder")
    cameras: list[str] = Field(
        default_factory=list,
        description="more cameras allowed to send <prefix>/image/<camera> (station.camera and "
        "the drop folders' cameras always are)",
    )
    poll: bool = False
    poll_interval_s: float = 1.0
    settle_s: float = 0.2
    mqtt_images: bool = True

    @field_validator("cameras")
    @classmethod
    def _safe_camera_names(cls, cameras: list[str]) -> list[str]:
        for camera in cameras:
            if not SAFE_NAME.fullmatch(camera):
                raise ValueError(f"camera {camera!r} may hold only letters, digits, '-' and '_'")
        return cameras


class TlsSettings(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class MqttSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "plant/line/aoi"
    client_id: str = ""
    keepalive_s: int = 30
    username: str = ""
    password_file: Path | None = Field(
        default=None,
        description="file holding the password; when empty, $CREDENTIALS_DIRECTORY/mqtt_password",
    )
    tls: TlsSettings = Field(default_factory=TlsSettings)
    heatmaps_for_ok: bool = False
    stats_interval_s: float = 30.0

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#"):
            raise ValueError(f"prefix {prefix!r} must be non-empty and free of MQTT wildcards")
        return prefix


class PathSettings(Section):
    models: Path = Path("models")
    state: Path = Path("state")


class ScoringSettings(Section):
    threads: int = Field(default=1, ge=1, description="onnxruntime threads per session")
    workers: int = Field(default=2, ge=1, description="boards inspected at the same time")
    connector_threads: int = Field(default=2, ge=1, description="connectors scored at once")


# The trainer's sections. Their names are part of the file's contract, so that every program
# reading the file (`edge-inspect run` included) refuses a key that does not exist; their
# types, defaults and checks belong to the trainer (`trainer/settings.py`), which the agent
# never imports. tests/test_config_template.py keeps these names equal to the trainer's fields.
TRAINER_KEYS: dict[str, tuple[str, ...]] = {
    "training": (
        "method", "backbone", "backbone_weights", "input_size", "input_size_max", "color_mode",
        "coreset_ratio", "coreset_max", "coreset_radius_share", "projection_dim", "neighbourhood",
        "padim_dims",
        "ae_epochs", "ae_patience", "ae_batch", "ae_lr", "ead_steps", "ead_eval_every",
        "ead_patience", "ead_batch", "ead_lr", "int8", "mask", "mask_min_weight",
        "mask_max_weight", "roi_file",
        "target_false_reject", "ok_only_confidence", "ok_only_spread", "ok_only_margin",
        "ko_side", "holdout_fraction", "parity_tolerance", "seed",
    ),
    "retrain": (
        "schedule", "misfire_grace_s", "seed_data", "max_train", "new_share", "max_holdout",
        "gate_share", "false_reject_tolerance", "rollout", "keep_versions", "nice", "threads",
        "recalibrate", "recalibrate_min_ok", "recalibrate_confidence", "recalibrate_boards",
        "recalibrate_min_change",
    ),
}  # fmt: skip


class ShadowSettings(Section):
    """The part of `[retrain]` that the agent runs itself: promotion of a shadowed candidate."""

    shadow_boards: int = Field(default=50, ge=1)


def _opaque(
    name: str, base: type[Section], keys: tuple[str, ...], typed: dict[str, Any] | None = None
) -> type[Section]:
    """A section whose keys are known but whose values the agent keeps as written, except the
    `typed` ones that agent-side programs read (name -> (type, default))."""
    fields = {key: (Any, None) for key in keys} | (typed or {})
    return create_model(name, __base__=base, **fields)


# The console's station set-up reads these two: the model input size that ROIs are drawn in,
# and the ROI file (anchored at the config's folder like every path). Their defaults are the
# trainer's (tests/test_config_template.py checks that).
TrainingSection = _opaque(
    "TrainingSection",
    Section,
    TRAINER_KEYS["training"],
    {"input_size": (int, 128), "roi_file": (Path | None, None)},
)
RetrainSection = _opaque("RetrainSection", ShadowSettings, TRAINER_KEYS["retrain"])


class RetentionSettings(Section):
    """How long and how much the agent keeps: crops, handled inputs, journal rows."""

    keep_crops: bool = True
    max_age_days: float = Field(default=30, gt=0, description="kept crops")
    max_disk_mb: float = Field(default=2000, gt=0, description="kept crops")
    processed_max_age_days: float = Field(default=14, gt=0)
    processed_max_disk_mb: float = Field(default=5000, gt=0, description="per camera folder")
    failed_max_age_days: float = Field(default=90, gt=0)
    failed_max_disk_mb: float = Field(default=2000, gt=0, description="per camera folder")
    inspections_max_age_days: float = Field(default=90, gt=0)
    inspections_max_rows: int = Field(default=1_000_000, gt=0)
    prune_interval_s: float = Field(default=600, gt=0)
    batch: int = Field(default=500, ge=1, description="files or rows removed per step")


class StorageSettings(Section):
    """Free-space floors on the state filesystem, and how boards that failed to journal retry."""

    min_free_mb: float = Field(
        default=200, ge=0, description="below: not ready (the journal still writes while it can)"
    )
    crops_min_free_mb: float = Field(
        default=1000, ge=0, description="below: no crop is written and old crops are pruned"
    )
    retry_max_s: float = Field(
        default=30, gt=0, description="a board that failed to journal: retried 1 s doubling to this"
    )
    integrity_check_interval_s: float = Field(
        default=3600, gt=0, description="full journal integrity check, off the inspection path"
    )
    give_up_after_s: float = Field(
        default=300,
        gt=0,
        description="an input retried this long without progress gets an ERROR verdict"
        " (not while the disk is full: that waits for space)",
    )

    @model_validator(mode="after")
    def _crops_give_way_first(self) -> Self:
        if self.crops_min_free_mb < self.min_free_mb:
            raise ValueError(
                f"crops_min_free_mb ({self.crops_min_free_mb}) must be at least min_free_mb "
                f"({self.min_free_mb}): crops give way before the journal"
            )
        return self


class HealthSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8787
    max_outbox: int = 10_000
    mqtt_down_max_s: float = Field(
        default=120,
        ge=0,
        description="MQTT broker out of reach longer than this: not ready (0: never)",
    )


class DriftSettings(Section):
    """The drift monitor: sequential tests of each connector's scores and of the photo."""

    enabled: bool = True
    baseline_boards: int = Field(
        default=150, ge=10, description="boards that set a reference measured on the line"
    )
    clear_after_boards: int = Field(default=50, ge=1, description="boards back in bounds: ok")
    history_every: int = Field(default=10, ge=1, description="boards between history rows")
    focus_every_boards: int = Field(
        default=2, ge=1, description="photos between two readings of the focus (sharpness)"
    )
    light_every_boards: int = Field(
        default=2,
        ge=1,
        description="photos between two readings of the light (brightness, contrast), halfway "
        "between the focus readings",
    )
    alarm_arl_boards: float = Field(default=1e6, gt=1, description="in-control boards per alarm")
    warning_arl_boards: float = Field(
        default=1e5, gt=1, description="in-control boards per warning"
    )
    review_head_boards: int = Field(
        default=50, ge=0, description="crops of an alarmed connector put first in review"
    )
    retrain_after_confirmed: int = Field(
        default=30, ge=1, description="confirmed crops of an alarmed connector: early retrain"
    )

    @model_validator(mode="after")
    def _warning_before_alarm(self) -> Self:
        if self.warning_arl_boards > self.alarm_arl_boards:
            raise ValueError("warning_arl_boards must not exceed alarm_arl_boards")
        return self


OpcUaPolicy = Literal["Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt", "None"]


class OpcUaSettings(Section):
    """The OPC UA server (`edge-inspect opcua`, its own process beside the agent)."""

    enabled: bool = False
    host: str = Field(default="0.0.0.0", description="listen address")
    port: int = Field(default=4840, ge=1, le=65535)
    path: str = Field(default="edge-inspect", pattern=r"^[A-Za-z0-9._-]*$")
    policies: list[OpcUaPolicy] = Field(
        default=["Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"],
        min_length=1,
        description="security policies offered; None only when asked for",
    )
    allow_anonymous: bool = False
    certificate: Path = Path("opcua/server-cert.der")
    private_key: Path = Path("opcua/server-key.pem")
    trusted_certs: Path = Field(
        default=Path("opcua/trusted"),
        description="client certificates (DER or PEM) allowed to open a channel and to log in",
    )
    users_file: Path = Field(
        default=Path("opcua/users"),
        description="`name:pbkdf2 hash` lines (edge-inspect opcua --add-user); none: no users",
    )
    last_results: int = Field(default=100, ge=1, le=10_000)
    poll_interval_s: float = Field(default=0.2, gt=0)
    max_sessions: int = Field(default=20, ge=1)
    max_queue: int = Field(default=1000, ge=1, description="notifications kept per monitored item")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class StationConfig(BaseSettings):
    """Everything a station needs; relative paths are relative to the config file's folder."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    station: StationSettings = Field(default_factory=StationSettings)
    connectors: dict[ConnectorId, ConnectorSettings] = Field(default_factory=dict)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    registration: RegistrationSettings = Field(default_factory=RegistrationSettings)
    inputs: InputSettings = Field(default_factory=InputSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    training: TrainingSection = Field(default_factory=TrainingSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    opcua: OpcUaSettings = Field(default_factory=OpcUaSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (the file's values arrive as init kwargs).
        return (env_settings, init_settings)

    def enabled_connectors(self) -> list[str]:
        """Ids of the connectors to inspect, in the config's order."""
        return [cid for cid, c in self.connectors.items() if c.enabled]

    def image_cameras(self) -> list[str]:
        """The cameras whose MQTT images are taken: station.camera, drop folders', declared."""
        named = [self.station.camera, *self.inputs.drop_folders, *self.inputs.cameras]
        return [c for c in dict.fromkeys(named) if SAFE_NAME.fullmatch(c)]

    def resolved(self, base: Path) -> Self:
        """A copy whose relative paths are anchored at `base` (the config file's folder)."""
        data = self.model_dump()
        _anchor_paths(data, base)
        return type(self).model_validate(data)


Config = TypeVar("Config", bound=StationConfig)


def _anchor_paths(node: Any, base: Path) -> None:
    items = node.items() if isinstance(node, dict) else []
    for key, value in items:
        if isinstance(value, Path) and not value.is_absolute():
            node[key] = base / value
        elif isinstance(value, dict):
            _anchor_paths(value, base)


def _key(loc: tuple[Any, ...]) -> str:
    """A key's dotted path as one printable line (a TOML key may hold any character)."""
    dotted = ".".join(str(part) for part in loc if part != "[key]")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in dotted)


def _env_variable(loc: tuple[Any, ...]) -> str | None:
    """The EDGE_INSPECT_* variable that set the key at `loc` (or a section above it), if any;
    such variables beat the file, so an error there is the variable's."""
    names = {name.upper(): name for name in os.environ}
    for depth in range(len(loc), 0, -1):
        candidate = ENV_PREFIX + "__".join(str(part) for part in loc[:depth])
        if candidate.upper() in names:
            return names[candidate.upper()]
    return None


def _format_error(where: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = _key(item["loc"])
        variable = _env_variable(item["loc"])
        source = f"environment variable {variable}" if variable else where
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: '{key}': {message} (got {item.get('input')!r})")
    return "\n".join(lines)


def _unknown_env_sections(schema: type[StationConfig]) -> list[str]:
    """EDGE_INSPECT_<SECTION>__<key> variables whose section does not exist (a typo, not a no-op).

    pydantic-settings rejects unknown keys inside a known section but ignores unknown sections.
    """
    lines = []
    for name in os.environ:
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in schema.model_fields:
            lines.append(f"environment variable {name}: unknown key '{section}'")
    return lines


def load_config(path: Path | None, schema: type[Config] = StationConfig) -> Config:
    """Read a station config (TOML), apply EDGE_INSPECT_* overrides and anchor relative paths.

    `schema` is the agent's `StationConfig` or a subclass that types more of it (the trainer's).
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    where = str(path) if path is not None else "settings"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except RecursionError:
            raise ConfigError(
                f"{path}: not valid TOML: arrays or tables nested too deeply"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        base = path.resolve().parent
    # Checked before the keys reach the schema as keywords, where pydantic-settings would take
    # names such as `_env_file` or `_build_sources` as its own options.
    unknown = [
        f"{where}: unknown key '{_key((key,))}'" for key in data if key not in schema.model_fields
    ]
    unknown += _unknown_env_sections(schema)
    if unknown:
        raise ConfigError("\n".join(unknown))
    try:
        return schema(**data).resolved(base)
    except ValidationError as exc:
        raise ConfigError(_format_error(where, exc)) from None


def load_config_for_command(
    prog: str, path: Path | None, schema: type[Config] = StationConfig
) -> Config | None:
    """`load_config` for a command line: None after printing `prog: error: ...` to stderr."""
    try:
        return load_config(path, schema)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
