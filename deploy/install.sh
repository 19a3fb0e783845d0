#!/usr/bin/env bash
# Install or upgrade edge-inspect on a line PC; safe to run again.
set -euo pipefail

readonly APP_USER=edge-inspect
readonly PREFIX=/opt/edge-inspect
readonly VENV=$PREFIX/venv
readonly ETC=/etc/edge-inspect
readonly CONF=$ETC/config.toml
readonly VAR=/var/lib/edge-inspect
readonly DROP=/srv/edge-inspect/drop
readonly UNIT_DIR=/etc/systemd/system
readonly UNITS=(edge-inspect-agent.service edge-inspect-trainer.service
    edge-inspect-console.service edge-inspect-opcua.service)
readonly OLD_TIMER=edge-inspect-trainer.timer

usage() {
    cat <<EOF
usage: $(basename "$0") [--config STATION.toml] [--repo DIR] [--wheelhouse DIR]
                  [--pip-arg ARG]... [--no-enable] [--with-broker] [-h|--help]

Installs edge-inspect as the systemd service edge-inspect-agent, the retraining
service edge-inspect-trainer (on retrain.schedule of the config) and the operator console
(edge-inspect-console, http://127.0.0.1:8788/), and the OPC UA server edge-inspect-opcua
(started when [opcua] enabled = true; its certificate is made here). Run as root; running
it again upgrades and keeps existing settings.

  --config FILE     station config to install as $CONF (only when that file does not
                    exist yet; default: the annotated template config.toml of the checkout)
  --repo DIR        source checkout to install (default: the folder above this script)
  --wheelhouse DIR  install offline from the wheels in DIR (pip --no-index --find-links)
  --pip-arg ARG     pass ARG to pip install, e.g. --pip-arg=--extra-index-url=URL for a
                    CPU-only torch index (repeatable)
  --no-enable       install the units but do not enable them
  --with-broker     also install the mosquitto broker (apt-get); see deploy/mosquitto.conf
  -h, --help        show this help

Creates what is missing:
  system user $APP_USER
  $VENV
  $CONF and an empty $ETC/mqtt_password and $ETC/console_users
  $VAR/state, $VAR/models (written into $CONF as paths.state, paths.models)
  $DROP/<camera> for each camera of the config
  the units in $UNIT_DIR
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

note() {
    echo "==> $*"
}

station_config=""
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wheelhouse=""
pip_args=(--disable-pip-version-check)
enable=1
with_broker=0

while (($#)); do
    case "$1" in
        --config) station_config="${2:?--config needs a file}"; shift 2 ;;
        --repo) repo="${2:?--repo needs a folder}"; shift 2 ;;
        --wheelhouse) wheelhouse="${2:?--wheelhouse needs a folder}"; shift 2 ;;
        --pip-arg=*) pip_args+=("${1#--pip-arg=}"); shift ;;
        --pip-arg) pip_args+=("${2:?--pip-arg needs a value}"); shift 2 ;;
        --no-enable) enable=0; shift ;;
        --with-broker) with_broker=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

((EUID == 0)) || die "run as root (it creates a system user and installs systemd units)"
[[ -f $repo/pyproject.toml ]] || die "$repo is not an edge-inspect checkout (no pyproject.toml)"
if [[ -n $station_config ]]; then
    [[ -f $station_config ]] || die "station config $station_config not found"
elif [[ ! -f $CONF ]]; then
    station_config=$repo/config.toml
    [[ -f $station_config ]] || die "$CONF does not exist yet and $station_config is missing"
fi
if [[ -n $wheelhouse ]]; then
    [[ -d $wheelhouse ]] || die "wheelhouse $wheelhouse is not a folder"
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "python3 must be 3.11 or newer (found $(python3 --version 2>&1))"

if ((with_broker)); then
    note "installing mosquitto"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto
fi

if ! id -u "$APP_USER" >/dev/null 2>&1; then
    note "creating system user $APP_USER"
    useradd --system --user-group --home-dir "$VAR" --no-create-home \
        --shell /usr/sbin/nologin "$APP_USER"
fi

if [[ ! -x $VENV/bin/python ]]; then
    note "creating $VENV"
    install -d -m 0755 "$PREFIX"
    python3 -m venv "$VENV" || die "python3 -m venv failed: apt-get install python3-venv"
fi
if [[ -n $wheelhouse ]]; then
    pip_args+=(--no-index --find-links "$wheelhouse")
fi
note "installing edge-inspect from $repo"
"$VENV/bin/pip" install "${pip_args[@]}" "${repo}[train]"

# Group-writable: the console's station set-up saves $CONF (keeping backups in config-backups/) and the
# ROI file here; the agent's unit sees /etc read-only.
install -d -m 0770 -o root -g "$APP_USER" "$ETC"
if [[ -f $CONF ]]; then
    note "keeping existing $CONF"
    chmod g+rw "$CONF"
else
    note "installing $station_config as $CONF"
    install -m 0660 -o root -g "$APP_USER" "$station_config" "$CONF"
fi
if [[ ! -e $ETC/mqtt_password ]]; then
    install -m 0600 -o root -g root /dev/null "$ETC/mqtt_password"
    note "created an empty $ETC/mqtt_password: write the broker password there if it needs one"
fi
if [[ ! -e $ETC/console_users ]]; then
    install -m 0600 -o root -g root /dev/null "$ETC/console_users"
    note "created an empty $ETC/console_users: add lines from" \
        "'$VENV/bin/edge-inspect console --hash-password NAME' before serving beyond localhost"
fi

install -d -m 0750 -o "$APP_USER" -g "$APP_USER" "$VAR" "$VAR/state" "$VAR/models"
# The config holds the state and models folders: the services and a shell read the same ones.
"$VENV/bin/python" "$repo/deploy/set_paths.py" "$CONF" "$VAR/state" "$VAR/models"
install -d -m 0755 /srv/edge-inspect "$DROP"

# The config decides the cameras; reading it with the installed package also validates it.
config_report="$("$VENV/bin/python" - "$CONF" "$DROP" <<'PY'
import sys
from pathlib import Path

from edge_agent.contracts.config import ConfigError
from trainer.settings import load_config

try:
    config = load_config(Path(sys.argv[1]))
except ConfigError as exc:
    sys.exit(f"install.sh: {exc}")
folders = dict(config.inputs.drop_folders) or {
    config.station.camera: Path(sys.argv[2]) / config.station.camera
}
for camera, folder in folders.items():
    print(f"drop\t{camera}\t{folder}")
if not config.station.reference_image.is_file():
    print(f"missing\t-\t{config.station.reference_image}")
PY
)"
while IFS=$'\t' read -r kind camera folder; do
    case "$kind" in
        drop)
            if [[ $folder == "$DROP/$camera" ]]; then
                install -d -m 2775 -o "$APP_USER" -g "$APP_USER" "$folder"
            else
                echo "warning: camera $camera drops into $folder, not $DROP/$camera:" \
                    "the service can only write under $DROP" >&2
            fi
            ;;
        missing) echo "warning: $CONF refers to $folder, which does not exist" >&2 ;;
    esac
done <<<"$config_report"

# The OPC UA server's certificate (made once; clients trust it) and its folders.
install -d -m 0750 -o root -g "$APP_USER" "$ETC/opcua" "$ETC/opcua/trusted"
"$VENV/bin/edge-inspect" opcua --config "$CONF" --make-cert
[[ -e $ETC/opcua/users ]] || install -m 0640 /dev/null "$ETC/opcua/users"
chgrp -R "$APP_USER" "$ETC/opcua" && chmod -R g+rX,o-rwx "$ETC/opcua"
opcua_enabled="$("$VENV/bin/python" -c 'import sys
from edge_agent.contracts.config import load_config
print(int(load_config(__import__("pathlib").Path(sys.argv[1])).opcua.enabled))' "$CONF")"

for unit in "${UNITS[@]}"; do
    install -m 0644 "$repo/systemd/$unit" "$UNIT_DIR/$unit"
done
# Before the trainer service read retrain.schedule, a timer with a fixed time started it.
if [[ -f $UNIT_DIR/$OLD_TIMER ]]; then
    note "removing $OLD_TIMER (the trainer service follows retrain.schedule)"
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$OLD_TIMER" || true
    fi
    rm -f "$UNIT_DIR/$OLD_TIMER"
fi

if [[ ! -d /run/systemd/system ]]; then
    note "systemd is not running here: units installed, nothing enabled"
    exit 0
fi
systemctl daemon-reload
if ((enable)); then
    systemctl enable edge-inspect-agent.service
    systemctl enable --now edge-inspect-trainer.service
    systemctl enable --now edge-inspect-console.service
    if ((opcua_enabled)); then
        systemctl enable --now edge-inspect-opcua.service
    fi
fi
systemctl try-restart edge-inspect-agent.service edge-inspect-trainer.service \
    edge-inspect-console.service edge-inspect-opcua.service
note "done; start the agent with: systemctl start edge-inspect-agent"
note "check it with: $VENV/bin/edge-inspect health --config $CONF"
note "operator console: http://127.0.0.1:8788/ (systemctl status edge-inspect-console)"
