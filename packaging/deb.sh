#!/usr/bin/env bash
# Builds FaceReko's Debian packages with cargo-deb from binaries that are already built, checks
# them with lintian, and leaves them in $CARGO_TARGET_DIR/debian (target/debian).
#
#   packaging/deb.sh release   the packages to ship: builds both binaries in release (this
#                              machine's with cargo, the Pi's with tests/cross-build.sh), then
#                              packages them
#   packaging/deb.sh host      packages this machine's debug test build (target/debug), as
#                              tests/run.sh does before the tests (tests/it/deb.rs installs it)
#   packaging/deb.sh pi        packages the Pi's pi-check cross-build (target/cross), as
#                              tests/run.sh does after it, then checks the package (`check-pi`)
#   packaging/deb.sh check-pi  the arm64 package's control data and files, and its binary
#                              recognising a face under qemu-aarch64 (needs FACEREKO_TEST_MODELS)
#
# host and pi compile nothing: they package what the test command built. The generated files (the
# unit for /usr/bin, the conffile, the manual pages, the completions) are made by the host binary.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'deb.sh: error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Absolute, since the packages' paths are recorded for tests/it/deb.rs.
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
out="$target_dir/debian"
pi_triple=aarch64-unknown-linux-gnu
# The cross-build's own folder, as tests/run.sh gives it (CARGO_TARGET_DIR=target/cross).
pi_target_dir="$(realpath -m "${FACEREKO_PI_TARGET_DIR:-$target_dir/cross}")"
# cargo-deb's version is pinned: what lintian says depends on how it lays the package out.
cargo_deb_version=3.8.0

tools() {
    if ! cargo deb --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
        say "installing cargo-deb $cargo_deb_version"
        local started=$SECONDS
        cargo install --locked --version "$cargo_deb_version" cargo-deb
        say "cargo-deb installed in $((SECONDS - started)) s"
    fi
    if ! command -v lintian >/dev/null || ! command -v dpkg-shlibdeps >/dev/null; then
        say "installing lintian and dpkg-dev"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian dpkg-dev >/dev/null
    fi
}

# stage BUILD_DIR HOST_BINARY [install.sh config options]: the generated files that Cargo.toml's
# assets take from target/release/deb/, beside the binary being packaged.
stage() {
    local dir="$1/deb" host="$2"
    shift 2
    rm -rf "$dir"
    mkdir -p "$dir/man"
    # The same unit as install.sh's, for the binary where the package puts it.
    sed 's|/usr/local/bin/facereko|/usr/bin/facereko|g' systemd/facereko.service >"$dir/facereko.service"
    grep -q '^ExecStart=/usr/bin/facereko ' "$dir/facereko.service" || die "the unit's ExecStart was not moved to /usr/bin"
    # The conffile: the example config adapted as install.sh writes it (SQLite; on arm64 a Pi's hardware).
    bash install.sh --print-config --no-mariadb "$@" >"$dir/config.toml"
    "$host" generate man --dir "$dir/man"
    # Compressed as Debian wants them (cargo-deb compresses only files it does not find built).
    gzip -9n "$dir/man/"*.1
    "$host" generate completions bash >"$dir/facereko.bash"
    "$host" generate completions zsh >"$dir/_facereko"
}

# package NAME [cargo deb options]: builds the package and checks it with lintian. Every warning
# is either fixed or overridden with its reason in packaging/deb/lintian-overrides.
package() {
    local name="$1" deb started=$SECONDS
    shift
    mkdir -p "$out"
    say "cargo deb $* ($name)"
    deb="$(cargo deb --no-build --output "$out/" "$@" | tail -n 1)"
    [ -f "$deb" ] || die "cargo deb made no package (it printed '$deb')"
    say "lintian $(basename "$deb")"
    lintian --fail-on error,warning "$deb"
    printf '%s\n' "$deb" >"$out/$name.path"
    say "$deb: packaged and checked in $((SECONDS - started)) s"
}

host() {
    local bin="$target_dir/debug/facereko"
    [ -x "$bin" ] || die "$bin is missing: build it first (cargo test --no-run, as tests/run.sh does)"
    tools
    stage "$target_dir/debug" "$bin"
    # The debug build that the tests use: a package to test the packaging with, not one to ship.
    CARGO_TARGET_DIR="$target_dir" package amd64 --profile dev --fast
    CARGO_TARGET_DIR="$target_dir" package mariadb-amd64 --variant mariadb --profile dev --fast
}

pi() {
    local profile="${FACEREKO_PI_PROFILE:-pi-check}" host_bin="${FACEREKO_HOST_BIN:-$target_dir/debug/facereko}"
    local build="$pi_target_dir/$pi_triple/$profile"
    [ -x "$build/facereko" ] || die "$build/facereko is missing: run tests/cross-build.sh build first"
    [ -x "$host_bin" ] || die "$host_bin is missing: the host binary makes the manual pages and completions"
    tools
    stage "$build" "$host_bin" --pi
    local fast=()
    [ "$profile" = release ] || fast=(--fast)
    CARGO_TARGET_DIR="$pi_target_dir" package arm64 --variant pi --profile "$profile" --target "$pi_triple" "${fast[@]}"
    CARGO_TARGET_DIR="$pi_target_dir" package mariadb-arm64 --variant mariadb --profile "$profile" --target "$pi_triple" "${fast[@]}"
}

check_pi() {
    local deb
    deb="$(cat "$out/arm64.path" 2>/dev/null)" || die "no arm64 package: run packaging/deb.sh pi first"
    say "checking $deb"
    local info
    info="$(dpkg-deb --info "$deb")"
    printf '%s\n' "$info" | sed -n '/^ Package:/,$p'
    for field in "Package: facereko" "Architecture: arm64" "Depends: .*libc6" "Recommends: rpicam-apps"; do
        grep -q "^ $field" <<<"$info" || die "dpkg-deb --info has no '$field'"
    done
    for script in postinst prerm postrm conffiles; do
        grep -q "^ .* $script\b" <<<"$info" || die "the package has no $script"
    done
    local contents
    contents="$(dpkg-deb --contents "$deb")"
    for path in ./usr/bin/facereko ./lib/systemd/system/facereko.service ./etc/facereko/config.toml \
        ./usr/lib/sysusers.d/facereko.conf ./usr/lib/tmpfiles.d/facereko.conf ./usr/share/man/man1/facereko.1.gz \
        ./usr/share/bash-completion/completions/facereko ./usr/share/zsh/vendor-completions/_facereko \
        ./usr/share/doc/facereko/README.md ./usr/share/doc/facereko/copyright; do
        grep -q " $path$" <<<"$contents" || die "the package lacks $path"
    done
    # Global, not local: the EXIT trap runs after check_pi has returned, under `set -u`.
    unpacked="$(mktemp -d)"
    trap 'rm -rf "$unpacked"' EXIT
    dpkg-deb --extract "$deb" "$unpacked"
    grep -q '^reader = "mfrc522"$' "$unpacked/etc/facereko/config.toml" || die "the arm64 conffile is not for a Pi's hardware"
    # The packaged (stripped) binary itself, as tests/cross-build.sh checks the built one.
    CARGO_TARGET_DIR="$pi_target_dir" FACEREKO_PI_BINARY="$unpacked/usr/bin/facereko" bash tests/cross-build.sh check
}

case "${1:-}" in
    release)
        command -v cargo >/dev/null || die "cargo is needed to build"
        say "cargo build --release (this machine)"
        cargo build --release --locked --bin facereko
        say "the Pi's binary in release (tests/cross-build.sh)"
        FACEREKO_PI_PROFILE=release CARGO_TARGET_DIR="$pi_target_dir" bash tests/cross-build.sh build
        tools
        stage "$target_dir/release" "$target_dir/release/facereko"
        CARGO_TARGET_DIR="$target_dir" package amd64 --profile release
        CARGO_TARGET_DIR="$target_dir" package mariadb-amd64 --variant mariadb --profile release
        FACEREKO_PI_PROFILE=release FACEREKO_HOST_BIN="$target_dir/release/facereko" pi
        ;;
    host) host ;;
    pi) pi; check_pi ;;
    check-pi) check_pi ;;
    *) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
