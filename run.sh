#!/usr/bin/env bash
# edge-inspect quick start on a fresh Debian machine:
#   ./run.sh demo [options]   generate a station, train its models, run the agent on it
#   ./run.sh test [pytest args]   the whole test suite (what CI runs)
#   ./run.sh setup            only install (.venv with pinned packages, mosquitto, chromium)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${EDGE_INSPECT_VENV:-.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup() {
    if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
        echo "installing mosquitto (MQTT broker used by the demo and the tests)" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    fi
    if ! command -v chromium >/dev/null 2>&1; then
        # Playwright drives Debian's chromium in the console's browser tests
        # (its own browser download is not available offline).
        echo "installing chromium (browser for the console tests)" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
        echo "installing Python packages into $VENV" >&2
        python3 -m venv "$VENV"
        # torch first and exactly pinned, so nothing pulls a CUDA build.
        "$VENV/bin/pip" install -q torch==2.13.0
        "$VENV/bin/pip" install -q -e '.[train,dev]'
        touch "$VENV/.installed"
    fi
}

case "${1:-}" in
    setup) setup ;;
    demo) shift; setup; exec "$VENV/bin/edge-inspect" demo "$@" ;;
    test)
        shift; setup
        set +e
        "$VENV/bin/python" -m pytest "$@"
        code=$?
        # pytest exits 5 when it collected no tests: that is a failure here.
        [ "$code" = 5 ] && echo "no tests were collected" >&2 && exit 1
        exit "$code" ;;
    *) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
