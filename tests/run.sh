#!/usr/bin/env bash
# Runs every FaceReko check: formatting, lints, unit and integration tests.
# Installs what is missing on a fresh Debian/Raspberry Pi OS machine; fails with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

apt_updated=no
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
    if [ "$apt_updated" = no ]; then as_root apt-get update -qq; apt_updated=yes; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v cc >/dev/null || { say "installing a C compiler (bundled SQLite, tract)"; apt_install build-essential; }
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
if ! command -v cargo >/dev/null; then
    # Debian's own Rust is too old for edition 2024; rustup installs the current stable.
    say "installing Rust with rustup"
    command -v curl >/dev/null || apt_install curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v rustup >/dev/null; then
    for component in clippy rustfmt; do
        rustup component list --installed | grep -q "^$component" || rustup component add "$component"
    done
fi
command -v systemd-analyze >/dev/null || { say "installing systemd-analyze (unit file tests)"; apt_install systemd; }
command -v shellcheck >/dev/null || { say "installing shellcheck (install.sh tests)"; apt_install shellcheck; }
# The store tests and install.sh's test run throw-away MariaDB servers.
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { say "installing MariaDB (store and install.sh tests)"; apt_install mariadb-server mariadb-client; }
# The MQTT tests run their own broker with TLS on a loopback port.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] \
    || { say "installing Mosquitto (MQTT tests)"; apt_install mosquitto; }
# The voice tests render every phrase with espeak-ng and play it with aplay on ALSA's null device.
command -v espeak-ng >/dev/null || { say "installing espeak-ng (voice tests)"; apt_install espeak-ng; }
command -v aplay >/dev/null || { say "installing alsa-utils (voice tests)"; apt_install alsa-utils; }
# The e-mail tests run a real SMTP server (tests/smtp/server.py) on aiosmtpd. apt installs it for
# Debian's python3, which a pyenv or virtualenv python3 earlier on PATH does not see.
{ python3 -c 'import aiosmtpd' || /usr/bin/python3 -c 'import aiosmtpd'; } 2>/dev/null \
    || { say "installing aiosmtpd (e-mail tests)"; apt_install python3-aiosmtpd; }
# tests/it/browser.rs drives the web app in Debian's Chromium with playwright-core: never a browser
# that a test tool downloads. npm ci runs again only when the lock file changed since the last one.
[ -x /usr/bin/chromium ] || { say "installing Chromium (browser test)"; apt_install chromium; }
command -v node >/dev/null || { say "installing Node.js (browser test)"; apt_install nodejs; }
command -v npm >/dev/null || { say "installing npm (browser test)"; apt_install npm; }
# The browser test trusts the door's own certificate authority in an NSS store of its own
# (certutil), as a Linux owner would; the TLS tests also use curl as a client.
command -v certutil >/dev/null || { say "installing libnss3-tools (browser test over https)"; apt_install libnss3-tools; }
command -v curl >/dev/null || { say "installing curl (TLS tests)"; apt_install curl; }
e2e=tests/e2e
if [ ! -d "$e2e/node_modules/playwright-core" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; then
    say "installing playwright-core (browser test)"
    npm ci --prefix "$e2e" --no-audit --no-fund
fi
# The boto3 test installs boto3 into a venv in ~/.cache/facereko when the system Python lacks it.
python3 -c 'import boto3' 2>/dev/null || python3 -c 'import ensurepip' 2>/dev/null \
    || { say "installing python3-venv (boto3 test)"; apt_install python3-venv; }

facedata=../shared/facedata
[ -d "$facedata/lfw10" ] || die "the face pictures are missing: put the shared folder beside this repository ($PWD/$facedata)"

say "cargo fmt --check"
cargo fmt --all -- --check

# Top-level modules import one way (README, "For developers"); the checker prints any cycle.
say "one-way layers"
python3 ../shared/tools/layers.py

# Clippy lints while the tests are compiled, as the workspace's compiler (what `cargo clippy`
# does, but with code generation), so the tree is compiled once rather than once to lint and once
# to test. CLIPPY_ARGS carries `-D warnings` in the form cargo-clippy itself passes it.
clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver) \
    || die "clippy-driver not found: rustup component add clippy"
linted() { RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" "$@"; }

# The cross-build for the Pi starts first and runs beside everything else at the lowest
# priority, in its own folder under target/ so that neither build waits for the other's lock: it
# takes the CPU the test build leaves idle (one crate compiling on one core, links) and the tests
# leave idle (they mostly wait on servers, sockets and the browser).
cross_target="${CARGO_TARGET_DIR:-target}/cross"
cross_log=$(mktemp)
say "cross-build for the Raspberry Pi (aarch64), in the background"
# In a session of its own, so that a failing run stops the whole build with it. Linux schedules
# each session as a group (autogroup) and shares the CPU fairly between groups whatever the nice
# value of their processes, so the group itself is set to the lowest priority too.
CARGO_TARGET_DIR="$cross_target" setsid bash -c \
    'echo 19 >/proc/self/autogroup 2>/dev/null || true; exec nice -n 19 bash tests/cross-build.sh build' \
    >"$cross_log" 2>&1 &
cross_build=$!
trap 'kill -- -"$cross_build" 2>/dev/null || true; rm -f "$cross_log"' EXIT

say "build every target with clippy's lints (-D warnings)"
linted cargo test --all-targets --locked --no-run

# The models live outside the clone (never in git) and are fetched once; later runs only verify them.
models_cache="${FACEREKO_MODELS_CACHE:-$HOME/.cache/facereko/models}"
say "face models in $models_cache"
# The binary the test build made for the integration tests: `cargo run` would build the tree again,
# because without the dev-dependencies tokio lacks `test-util` and everything above it changes.
"${CARGO_TARGET_DIR:-target}/debug/facereko" models fetch --dir "$models_cache"
export FACEREKO_TEST_MODELS="$models_cache"

# The amd64 Debian package from the test build's binary (nothing is compiled; cargo-deb and
# lintian are installed once), checked by lintian; tests/it/deb.rs installs it in a throw-away root.
say "Debian package for amd64, from the test build"
bash packaging/deb.sh host

say "cargo test"
linted cargo test --all-targets --locked

say "cross-build for the Raspberry Pi (aarch64)"
cross_ok=yes
wait "$cross_build" || cross_ok=no
cat "$cross_log"
[ "$cross_ok" = yes ] || die "the aarch64 cross-build failed (its output is above)"
# The arm64 Debian package from the cross-build, checked by lintian; its binary then recognises a
# face under qemu-aarch64 (tests/cross-build.sh check on the packaged binary).
FACEREKO_PI_TARGET_DIR="$cross_target" bash packaging/deb.sh pi
