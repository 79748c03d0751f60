#!/usr/bin/env bash
# Set up everything `make test` / `make demo` need, from a fresh Debian/Ubuntu
# machine: system packages (when root or with passwordless sudo), a virtualenv in
# .venv, and the project installed into it in editable mode.
#
# Idempotent and quiet: a second run with nothing changed does no apt and no pip
# work. Works with no TTY and DEBIAN_FRONTEND=noninteractive.
#
# Environment:
#   PYTHON            interpreter to build .venv from (default: python3 on PATH)
#   BOOTSTRAP_EXTRAS  extras to install (default: test,audio,emulator)
#   BOOTSTRAP_NO_APT  set to 1 to never call apt-get (only report what is missing)
#   VENV              virtualenv folder (default: .venv in the repository root)
#   BOOTSTRAP_CONSTRAINTS  a pip constraints file (e.g. scripts/constraints-oldest.txt for
#                     the oldest tested aiortc/aioice/av, which `make test` builds in .venv-oldest)
#
# `bootstrap.sh --check` changes nothing: it exits 0 if .venv is up to date with
# the packaging files (a run now would skip pip), 1 otherwise.
set -euo pipefail

CHECK_ONLY=0
case "${1:-}" in
    "") ;;
    --check) CHECK_ONLY=1 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=${VENV:-$ROOT/.venv}
EXTRAS=${BOOTSTRAP_EXTRAS:-test,audio,emulator}
CONSTRAINTS=${BOOTSTRAP_CONSTRAINTS:-}
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Every system package the SDK, its tests and its demo use. What each is for:
#   gcc, libc6-dev, portaudio19-dev
#                            build pyaudio (it has no Linux wheel; gcc only
#                            *recommends* libc6-dev, whose headers it needs)
#   pulseaudio, pulseaudio-utils, libasound2-plugins
#                            virtual speaker/microphone for pyaudio (RECIPES §3)
#   prosody                  a real XMPP server on loopback (RECIPES §4)
#   iproute2, util-linux     `ip` and `unshare` for scripts/netns-run (RECIPES §1)
#   redis-server             the Celery broker of samples/celery_worker's test (started
#                            by the test itself on 127.0.0.1, never as a service)
APT_PACKAGES=(gcc libc6-dev portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins
    prosody iproute2 util-linux redis-server)
# Without these the pip step cannot succeed, so their absence is fatal.
BUILD_PACKAGES=(gcc libc6-dev portaudio19-dev)

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Run a noisy command quietly; on failure show its whole output and stop.
quiet() {
    local what=$1; shift
    if ! "$@" >"$TMP/out.log" 2>&1; then
        cat "$TMP/out.log" >&2
        die "$what failed: $*"
    fi
}

# ---------------------------------------------------------------- interpreter --
PY=${PYTHON:-python3}
PY_PATH=$(command -v "$PY" 2>/dev/null || true)

# ------------------------------------------------------------------- stamp --
# The stamp records what was installed: a change to the packaging files or the
# version, the set of packages (a new __init__.py changes the editable install's
# map) or the interpreter triggers a new pip run; asking for extras that are
# already installed does not.
STAMP=$VENV/.bootstrap-stamp
fingerprint() {
    {
        cat setup.cfg
        cat setup.py pyproject.toml purecloud_webrtc/_version.py 2>/dev/null || true
        if [ -n "$CONSTRAINTS" ]; then cat "$CONSTRAINTS"; fi
        find purecloud_webrtc -name __init__.py 2>/dev/null | LC_ALL=C sort
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

needed_extras() {
    # Prints $EXTRAS if pip must run: the stamp is missing, its fingerprint differs,
    # or it lacks one of the extras asked for. Prints nothing otherwise.
    local stamped_fp="" stamped_extras="" e
    if [ -f "$STAMP" ]; then
        read -r stamped_fp stamped_extras <"$STAMP" || true
    fi
    if [ "$stamped_fp" != "$FP" ]; then
        echo "$EXTRAS"
        return
    fi
    for e in ${EXTRAS//,/ }; do
        [[ ",$stamped_extras," == *",$e,"* ]] || { echo "$EXTRAS"; return; }
    done
}

if [ "$CHECK_ONLY" = 1 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "$VENV does not exist: run bash scripts/bootstrap.sh"
        exit 1
    fi
    FP=$(fingerprint)
    if [ -n "$(needed_extras)" ]; then
        log "$VENV is out of date with the packaging files: run bash scripts/bootstrap.sh"
        exit 1
    fi
    log "$VENV is up to date"
    exit 0
fi

# ------------------------------------------------------------ system packages --
SUDO=()
CAN_APT=0
if [ "${BOOTSTRAP_NO_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        CAN_APT=1
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
        CAN_APT=1
    fi
fi

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

APT_UPDATED=0
apt_install() {
    # Wait for another apt/dpkg run (unattended-upgrades, a parallel set-up) instead
    # of failing on its lock.
    local apt=("${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=900)
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        quiet "apt-get update" "${apt[@]}" update
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    quiet "apt-get install" "${apt[@]}" install -y --no-install-recommends "$@"
}

apt_missing=()
missing_system_packages() {
    apt_missing=()
    local p
    for p in "$@"; do
        is_installed "$p" || apt_missing+=("$p")
    done
}

if command -v dpkg-query >/dev/null 2>&1; then
    wanted=("${APT_PACKAGES[@]}")
    [ -n "$PY_PATH" ] || wanted+=(python3)
    missing_system_packages "${wanted[@]}"
    if [ ${#apt_missing[@]} -gt 0 ]; then
        if [ "$CAN_APT" = 1 ]; then
            apt_install "${apt_missing[@]}"
        else
            log "WARNING: missing system packages (not root, no passwordless sudo):"
            log "    ${apt_missing[*]}"
            log "install them with:"
            log "    sudo apt-get install -y --no-install-recommends ${apt_missing[*]}"
            for p in "${BUILD_PACKAGES[@]}"; do
                if [[ " ${apt_missing[*]} " == *" $p "* ]]; then
                    die "$p is required to build pyaudio; install the packages above and re-run"
                fi
            done
            log "continuing: tests that need the missing programs will fail or skip"
        fi
    fi
else
    log "WARNING: not a Debian/Ubuntu system (no dpkg-query): install by hand the" \
        "equivalents of: ${APT_PACKAGES[*]}"
fi

[ -n "$PY_PATH" ] || PY_PATH=$(command -v "$PY" 2>/dev/null || true)
[ -n "$PY_PATH" ] || die "no '$PY' on PATH: install Python 3.10 or newer (or set PYTHON=...)"
if ! "$PY_PATH" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    die "$PY_PATH is Python $("$PY_PATH" -c 'import platform; print(platform.python_version())' \
        2>/dev/null || echo '?'); purecloud_webrtc needs Python 3.10 or newer" \
        "(set PYTHON=/path/to/python3.x)"
fi
PY_VER=$("$PY_PATH" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# Debian's own package name for something of this interpreter (python3.11-dev);
# fall back to the generic name (python3-dev) when apt does not know the first.
debian_pkg_for_python() {
    local suffix=$1
    if apt-cache show "python$PY_VER-$suffix" >/dev/null 2>&1; then
        echo "python$PY_VER-$suffix"
    else
        echo "python3-$suffix"
    fi
}

# pyaudio compiles a C extension: it needs Python.h of *this* interpreter.
PY_INCLUDE=$("$PY_PATH" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$PY_INCLUDE/Python.h" ]; then
    if [ "$CAN_APT" = 1 ] && command -v dpkg-query >/dev/null 2>&1; then
        apt_install "$(debian_pkg_for_python dev)"
    fi
    [ -f "$PY_INCLUDE/Python.h" ] || die "Python.h not found in $PY_INCLUDE (needed to build" \
        "pyaudio): install the development headers of $PY_PATH (Debian/Ubuntu:" \
        "apt-get install python$PY_VER-dev)"
fi

# ---------------------------------------------------------------- virtualenv --
venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys, pip' 2>/dev/null
}

# A venv left by another interpreter (or a half-made one) is rebuilt, not patched.
if [ -e "$VENV" ]; then
    want=$("$PY_PATH" -c 'import sys; print(sys.version)')
    have=$("$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || true)
    if [ "$want" != "$have" ] || ! venv_ok; then
        log "rebuilding $VENV (made by another or a broken interpreter)"
        rm -rf "$VENV"
    fi
fi

if [ ! -e "$VENV" ]; then
    log "creating $VENV with $PY_PATH (Python $PY_VER)"
    if ! "$PY_PATH" -m venv "$VENV" >"$TMP/venv.log" 2>&1; then
        rm -rf "$VENV"
        # Debian and Ubuntu ship ensurepip separately, in pythonX.Y-venv.
        if [ "$CAN_APT" = 1 ] && command -v dpkg-query >/dev/null 2>&1; then
            apt_install "$(debian_pkg_for_python venv)"
            quiet "python -m venv" "$PY_PATH" -m venv "$VENV"
        else
            cat "$TMP/venv.log" >&2
            die "'$PY_PATH -m venv' failed; on Debian/Ubuntu install python$PY_VER-venv"
        fi
    fi
fi
venv_ok || die "$VENV/bin/python has no working pip"

# ------------------------------------------------------------ python packages --
FP=$(fingerprint)

if [ -n "$(needed_extras)" ]; then
    # Union with what is already installed, so `make lint` after `make test` (or the
    # reverse) does not keep reinstalling.
    all_extras=$EXTRAS
    if [ -f "$STAMP" ]; then
        read -r stamped_fp stamped_extras <"$STAMP" || true
        if [ "${stamped_fp:-}" = "$FP" ] && [ -n "${stamped_extras:-}" ]; then
            all_extras=$(printf '%s\n' ${EXTRAS//,/ } ${stamped_extras//,/ } | sort -u \
                | paste -sd, -)
        fi
    fi
    rm -f "$STAMP"
    # pip before 22 lacks PEP 660 editable installs and the modern resolver fixes.
    if ! "$VENV/bin/python" -c 'import sys, pip; sys.exit(int(pip.__version__.split(".")[0]) < 22)'; then
        log "upgrading the venv's old pip"
        quiet "pip upgrade" "$VENV/bin/python" -m pip install -q --upgrade 'pip>=22'
    fi
    constraint_args=()
    if [ -n "$CONSTRAINTS" ]; then constraint_args=(-c "$CONSTRAINTS"); fi
    log "pip install -e '.[$all_extras]' ${CONSTRAINTS:+(constraints $CONSTRAINTS) }(first run builds pyaudio; takes a minute)"
    quiet "pip install" "$VENV/bin/python" -m pip install -q "${constraint_args[@]}" -e ".[$all_extras]"
    printf '%s %s\n' "$FP" "$all_extras" >"$STAMP"
    log "done: $VENV is ready"
else
    log "$VENV is up to date (setup.cfg unchanged): skipping pip"
fi

# -------------------------------------------------------------- node packages --
# node/ holds the independent implementations the interop tests compare us with
# (stanza's SDP <-> Jingle converter, libwebrtc from @roamhq/wrtc). Node itself comes
# from apt when missing (Debian's nodejs + npm); a machine that already has a node
# (e.g. NodeSource's, which bundles npm) keeps it. Without node the Python suite still
# runs and those tests skip with the reason; CI has node, so they run there.
if [ -f node/package-lock.json ]; then
    node_missing=()
    command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || node_missing+=(npm)
    if [ ${#node_missing[@]} -gt 0 ]; then
        if [ "$CAN_APT" = 1 ] && command -v dpkg-query >/dev/null 2>&1; then
            apt_install "${node_missing[@]}"
        else
            log "WARNING: no ${node_missing[*]}: the Node interop tests will skip" \
                "(install with: apt-get install -y --no-install-recommends ${node_missing[*]})"
        fi
    fi
    if command -v npm >/dev/null 2>&1; then
        NODE_STAMP=node/node_modules/.bootstrap-stamp
        node_fp=$({ cat node/package.json node/package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)
        if [ "$(cat "$NODE_STAMP" 2>/dev/null || true)" != "$node_fp" ]; then
            log "npm ci in node/ (stanza, @roamhq/wrtc)"
            quiet "npm ci" npm --prefix node ci --no-audit --no-fund
            printf '%s\n' "$node_fp" >"$NODE_STAMP"
        else
            log "node/node_modules is up to date: skipping npm"
        fi
    fi
fi
