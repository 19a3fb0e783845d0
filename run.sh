#!/usr/bin/env bash
# edge-inspect quick start on a fresh Debian machine:
#   ./run.sh demo [options]   generate a station, train its models, run the agent on it
#   ./run.sh test [pytest args]   the whole test suite (what CI runs), ruff check and
#                             ruff format --check included (tests/test_code_style.py)
#   ./run.sh setup            only install (.venv with pinned packages; mosquitto, chromium,
#                             systemd-analyze, shellcheck and npm from Debian; node-opcua)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${EDGE_INSPECT_VENV:-.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_package() {  # package, a file it installs, why
    if [ ! -x "$2" ] && ! command -v "$(basename "$2")" >/dev/null 2>&1; then
        echo "installing $1 ($3)" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    fi
}

setup() {
    # Debian packages: the broker the demo and the tests use, the browser of the console
    # tests (Playwright drives Debian's chromium: its own download is not available
    # offline), and the checkers of the shipped units and scripts.
    need_package mosquitto /usr/sbin/mosquitto "MQTT broker used by the demo and the tests"
    need_package chromium /usr/bin/chromium "browser for the console tests"
    need_package systemd /usr/bin/systemd-analyze "systemd-analyze checks the service units"
    need_package shellcheck /usr/bin/shellcheck "checks the install script"
    need_package npm /usr/bin/npm "node-opcua, the second OPC UA stack of the interop test"
    if [ ! -d tests/interop/node_modules ] \
        || [ tests/interop/package-lock.json -nt tests/interop/node_modules ]; then
        echo "installing node-opcua into tests/interop" >&2
        (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error) && \
            touch tests/interop/node_modules
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
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
