#!/usr/bin/env bash
# Cross-builds FaceReko for 64-bit Raspberry Pi OS (aarch64) and runs the binary under qemu.
# Debian 12's glibc matches Bookworm's. rustc-web (1.96, from bookworm-security) is used because
# rustup's toolchain cannot link against Debian's arm64 standard library.
#
#   tests/cross-build.sh          build, then check the binary under qemu
#   tests/cross-build.sh build    only build (tests/run.sh starts this first, beside its own build)
#   tests/cross-build.sh check    only run the built binary under qemu (needs the face models);
#                                 FACEREKO_PI_BINARY names another one (packaging/deb.sh checks
#                                 the one inside the arm64 package)
#
# CI builds the `pi-check` profile (Cargo.toml says why); FACEREKO_PI_PROFILE=release builds the
# binary to install on a Pi.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

target=aarch64-unknown-linux-gnu
profile="${FACEREKO_PI_PROFILE:-pi-check}"
binary="${FACEREKO_PI_BINARY:-${CARGO_TARGET_DIR:-target}/$target/$profile/facereko}"

build() {
    local packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user)
    if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
        say "installing the aarch64 cross toolchain"
        dpkg --print-foreign-architectures | grep -qx arm64 || as_root dpkg --add-architecture arm64
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    say "cargo build --profile $profile --target $target"
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
        /usr/bin/cargo build --profile "$profile" --locked --target "$target" --bin facereko
}

check() {
    say "running $binary under qemu-aarch64"
    # No -L / QEMU_LD_PREFIX: with it, the first thread creation hangs; the multiarch loader is enough.
    local backends
    backends=$(qemu-aarch64 "$binary" hw list)
    grep -q "reader   simulated, mfrc522" <<<"$backends" || { echo "$backends"; exit 1; }
    local models="${FACEREKO_TEST_MODELS:?the models cache is set by tests/run.sh}"
    # Global, not local: the EXIT trap runs after check() has returned, under `set -u`.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    RUST_LOG=error qemu-aarch64 "$binary" --set data_dir="$scratch" --set engine.models_dir="$models" \
        compare --json "$models/samples/obama.jpg" "$models/samples/obama2.jpg" > "$scratch/compare.json"
    grep -q '"match":true' "$scratch/compare.json" || { cat "$scratch/compare.json"; exit 1; }
    echo "the aarch64 binary recognises the same person: $(cat "$scratch/compare.json")"
}

case "${1:-all}" in
    build) build ;;
    check) check ;;
    all) build; check ;;
    *) echo "usage: $0 [build|check]" >&2; exit 2 ;;
esac
