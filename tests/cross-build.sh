#!/usr/bin/env bash
# Cross-builds FaceReko for 64-bit Raspberry Pi OS (aarch64) and runs the binary under qemu.
# Debian 12's glibc matches Bookworm's. rustc-web (1.96, from bookworm-security) is used because
# rustup's toolchain cannot link against Debian's arm64 standard library.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
    say "installing the aarch64 cross toolchain"
    dpkg --print-foreign-architectures | grep -qx arm64 || as_root dpkg --add-architecture arm64
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

target=aarch64-unknown-linux-gnu
say "cargo build --release --target $target"
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    /usr/bin/cargo build --release --locked --target "$target" --bin facereko

binary="${CARGO_TARGET_DIR:-target}/$target/release/facereko"
say "running $binary under qemu-aarch64"
# No -L / QEMU_LD_PREFIX: with it, the first thread creation hangs; the multiarch loader is enough.
backends=$(qemu-aarch64 "$binary" hw list)
grep -q "reader   simulated, mfrc522" <<<"$backends" || { echo "$backends"; exit 1; }
models="${FACEREKO_TEST_MODELS:?the models cache is set by tests/run.sh}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
RUST_LOG=error qemu-aarch64 "$binary" --set data_dir="$scratch" --set engine.models_dir="$models" \
    compare --json "$models/samples/obama.jpg" "$models/samples/obama2.jpg" > "$scratch/compare.json"
grep -q '"match":true' "$scratch/compare.json" || { cat "$scratch/compare.json"; exit 1; }
echo "the aarch64 binary recognises the same person: $(cat "$scratch/compare.json")"
