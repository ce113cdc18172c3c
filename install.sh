#!/usr/bin/env bash
# Installs FaceReko on Raspberry Pi OS Bookworm (64-bit), or any Debian 12 machine for trying it.
#
# Safe to re-run: every step first checks whether its work is already done and then says
# "ok (...)"; otherwise it does the work and says "changed: ...". The last line counts the
# changes, so a second run in a row reports 0. `--dry-run` only looks and prints the plan.
# See README.md, "Install on a Raspberry Pi".
set -euo pipefail

SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SOURCE_DIR

USER_NAME=facereko
DB_NAME=facereko
# The user, its groups, and the owners and modes of the folders are declared once, for install.sh
# and the Debian packages alike (see each file's header).
SYSUSERS_FILE="$SOURCE_DIR/systemd/facereko.sysusers"
TMPFILES_FILE="$SOURCE_DIR/systemd/facereko.tmpfiles"
DEVICE_GROUPS=()
if [ -f "$SYSUSERS_FILE" ]; then
    mapfile -t DEVICE_GROUPS < <(sed -n "s/^m $USER_NAME \([a-z0-9_-]*\)\$/\1/p" "$SYSUSERS_FILE")
fi

usage() {
    cat <<EOF
Usage: sudo ./install.sh [OPTIONS]

Installs FaceReko as a systemd service: packages, SPI and the camera (on a Raspberry Pi), the
'$USER_NAME' system user (groups ${DEVICE_GROUPS[*]}), the binary, the unit, /etc/facereko/config.toml,
/var/lib/facereko, a MariaDB database and user, the face models; then enables and starts the service.
Run it again at any time: what is already in place is left alone, and your config is never overwritten.

Options:
  --dry-run             only look: print what would be done and change nothing
  --binary PATH         the facereko binary to install [default: target/release/facereko next to this
                        script (or target/<arch>-unknown-linux-gnu/release/facereko), built with cargo if absent]
  --root DIR            install the files under DIR instead of / (testing, building an image); steps that
                        act on the running system (packages, users and groups, SPI and camera, MariaDB,
                        starting the service) are skipped, the service is only enabled
  --no-mariadb          keep the embedded SQLite database (no MariaDB server, no database password)
  --mariadb-socket PATH set up the MariaDB server listening on this socket [default: the system's]; with
                        --root, MariaDB is set up only when this is given
  --skip-packages       do not install packages with apt-get
  --no-models           do not fetch the face models (fetch later: run install.sh again)
  --models-from DIR     copy the face models from DIR (e.g. a USB stick) instead of downloading them;
                        their checksums are verified all the same
  --no-start            do not enable or start the service
  --pi                  write the config for a Raspberry Pi's hardware even though this machine is not
                        one (with --root, when preparing a Pi's files on another machine)
  --print-config        only print the config it would write (with --pi, --no-mariadb) and stop; the
                        Debian packages' /etc/facereko/config.toml is made with it
  -h, --help            this help
EOF
}

DRY_RUN=no
ROOT=/
BINARY=
MARIADB=yes
MARIADB_SOCKET=
PACKAGES=yes
MODELS=yes
MODELS_FROM=
START=yes
CONFIG_FOR_PI=
PRINT_CONFIG=no

die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=yes ;;
        --binary) need_value "$@"; BINARY="$2"; shift ;;
        --root) need_value "$@"; ROOT="$2"; shift ;;
        --no-mariadb) MARIADB=no ;;
        --mariadb-socket) need_value "$@"; MARIADB_SOCKET="$2"; shift ;;
        --skip-packages) PACKAGES=no ;;
        --no-models) MODELS=no ;;
        --models-from) need_value "$@"; MODELS_FROM="$2"; shift ;;
        --no-start) START=no ;;
        --pi) CONFIG_FOR_PI=yes ;;
        --print-config) PRINT_CONFIG=yes ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

# --- Paths on the target system (under --root when given) ----------------------------------------

if [ "$ROOT" != / ]; then
    [ -d "$ROOT" ] || die "--root $ROOT is not an existing folder"
    ROOT="$(cd "$ROOT" && pwd)"
fi
if [ -n "$MODELS_FROM" ]; then
    [ -d "$MODELS_FROM" ] || die "--models-from $MODELS_FROM is not a folder"
    MODELS_FROM="$(cd "$MODELS_FROM" && pwd)"
fi
# Every target path is "$R/..."; R is empty for the real system.
R="${ROOT%/}"
readonly R
ON_SYSTEM=yes
[ -z "$R" ] || ON_SYSTEM=no

BIN_PATH=/usr/local/bin/facereko
CONFIG_DIR=/etc/facereko
CONFIG_FILE=$CONFIG_DIR/config.toml
PASSWORD_FILE=$CONFIG_DIR/db-password
DATA_DIR=/var/lib/facereko
MODELS_DIR=$DATA_DIR/models
UNIT_DIR=/etc/systemd/system
UNIT_FILE=$UNIT_DIR/facereko.service
DROPIN_DIR=$UNIT_DIR/facereko.service.d
DROPIN_FILE=$DROPIN_DIR/mariadb.conf
DOC_FILE=/usr/share/doc/facereko/README.md

# --- Reporting ------------------------------------------------------------------------------------

# Reporting (step, ok, changed, ...), file attributes and the MariaDB setup are shared with the
# facereko-mariadb package's postinst.
[ -f "$SOURCE_DIR/packaging/setup-lib.sh" ] || die "$SOURCE_DIR/packaging/setup-lib.sh is missing: run install.sh from a FaceReko checkout"
# shellcheck source=SCRIPTDIR/packaging/setup-lib.sh
. "$SOURCE_DIR/packaging/setup-lib.sh"
REBOOT_FOR=()
UNIT_CHANGED=no
DOC_CHANGES=0

if [ ! -f "$SYSUSERS_FILE" ] || [ ! -f "$TMPFILES_FILE" ]; then
    die "$SOURCE_DIR/systemd is incomplete: run install.sh from a FaceReko checkout"
fi
if [ "$DRY_RUN" = no ] && [ "$PRINT_CONFIG" = no ] && [ "$(id -u)" -ne 0 ] && [ "$ON_SYSTEM" = yes ]; then
    die "run it as root (sudo ./install.sh), or look first with --dry-run"
fi

# --- File helpers ---------------------------------------------------------------------------------

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
    local path="$1" mode="$2" owner="$3"
    if [ -d "$R$path" ]; then
        ok "$path exists"
        ensure_attrs "$path" "$mode" "$owner"
    elif changed "create $path ($mode $owner)"; then
        mkdir -p "$R$path"
        chmod "$mode" "$R$path"
        [ "$ON_SYSTEM" = no ] || chown "$owner" "$R$path"
    fi
    return 0
}

# ensure_file SOURCE PATH MODE OWNER:GROUP: PATH gets SOURCE's content (replaced when it differs).
ensure_file() {
    local source="$1" path="$2" mode="$3" owner="$4"
    [ -f "$source" ] || die "$source is missing: run install.sh from a FaceReko checkout"
    if [ ! -e "$R$path" ]; then
        changed "install $path" || return 0
    elif cmp -s "$source" "$R$path"; then
        ok "$path is up to date"
        ensure_attrs "$path" "$mode" "$owner"
        return 0
    else
        changed "update $path (it differs from $source)" || return 0
    fi
    mkdir -p "$(dirname "$R$path")"
    # Written beside the target and renamed, so a running service never sees half a file.
    cp "$source" "$R$path.new"
    chmod "$mode" "$R$path.new"
    [ "$ON_SYSTEM" = no ] || chown "$owner" "$R$path.new"
    mv -f "$R$path.new" "$R$path"
    return 0
}

# apply_tmpfiles TYPE: the lines of that type in systemd/facereko.tmpfiles, as systemd-tmpfiles
# would apply them: d (a folder, created if missing) or z (the mode and owner of an existing file).
apply_tmpfiles() {
    local wanted="$1" type path mode user group
    while read -r type path mode user group _; do
        [ "$type" = "$wanted" ] || continue
        case "$type" in
            d) ensure_dir "$path" "${mode#0}" "$user:$group" ;;
            z) ensure_attrs "$path" "${mode#0}" "$user:$group" ;;
            *) die "$TMPFILES_FILE: line type $type is not applied by install.sh" ;;
        esac
    done < <(grep -v '^[[:space:]]*\(#\|$\)' "$TMPFILES_FILE")
}

# --- Facts about this machine ---------------------------------------------------------------------

PI_MODEL=
for model_file in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
    if [ -r "$model_file" ]; then
        model="$(tr -d '\0' <"$model_file")"
        case "$model" in "Raspberry Pi"*) PI_MODEL="$model" ;; esac
        break
    fi
done
ON_PI=no
[ -z "$PI_MODEL" ] || ON_PI=yes
# The config names the real hardware when it is for a Pi; the firmware steps need a real one.
CONFIG_FOR_PI="${CONFIG_FOR_PI:-$ON_PI}"

BOOT_CONFIG=
for candidate in /boot/firmware/config.txt /boot/config.txt; do
    if [ -f "$candidate" ]; then
        BOOT_CONFIG="$candidate"
        break
    fi
done

SYSTEMD_RUNNING=no
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=yes

if [ "$ON_SYSTEM" = no ] && [ "$MARIADB" = yes ] && [ -z "$MARIADB_SOCKET" ]; then
    MARIADB=no
    MARIADB_SKIPPED="--root without --mariadb-socket: the system's MariaDB is left alone"
fi

banner() {
    printf 'FaceReko installer%s\n' "$([ "$DRY_RUN" = yes ] && echo ' (dry run: nothing will be changed)')"
    printf '   target: %s%s\n' "$ROOT" "$([ "$ON_SYSTEM" = no ] && echo ' (files only)')"
    printf '   machine: %s\n' "${PI_MODEL:-not a Raspberry Pi ($(uname -m))}"
    printf '   hardware in the config: %s\n' "$([ "$CONFIG_FOR_PI" = yes ] && echo 'Raspberry Pi (GPIO, MFRC522, rpicam)' || echo 'simulated')"
    printf '   database: %s\n' "$([ "$MARIADB" = yes ] && echo 'MariaDB' || echo 'SQLite (embedded)')"
}

# --- Steps ----------------------------------------------------------------------------------------

install_packages() {
    step "packages"
    if [ "$ON_SYSTEM" = no ]; then skipped "--root: packages belong to the running system"; return 0; fi
    if [ "$PACKAGES" = no ]; then skipped "--skip-packages"; return 0; fi
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this installer is for Raspberry Pi OS / Debian"
    # The certificate authorities that `facereko models fetch` checks the registries' HTTPS against.
    local wanted=(ca-certificates)
    [ "$MARIADB" = no ] || wanted+=(mariadb-server mariadb-client)
    # The camera programs come from the Raspberry Pi repository.
    [ "$ON_PI" = no ] || wanted+=(rpicam-apps)
    local missing=() package
    for package in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        ok "installed: ${wanted[*]}"
        return 0
    fi
    changed "apt-get install ${missing[*]}" || return 0
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    return 0
}

# ensure_boot_line LINE: LINE in the firmware's config.txt (read at boot), under an [all] filter.
ensure_boot_line() {
    local line="$1"
    [ -n "$BOOT_CONFIG" ] || die "no /boot/firmware/config.txt: enable it by hand ($line)"
    if grep -qx "$line" "$BOOT_CONFIG"; then
        ok "$line in $BOOT_CONFIG"
        return 0
    fi
    changed "add $line to $BOOT_CONFIG (takes effect after a reboot)" || return 0
    printf '\n# Added by FaceReko install.sh\n[all]\n%s\n' "$line" >>"$BOOT_CONFIG"
    REBOOT_FOR+=("$line")
    return 0
}

enable_spi_and_camera() {
    step "SPI (card reader) and camera"
    if [ "$ON_SYSTEM" = no ]; then skipped "--root: the running system's firmware is left alone"; return 0; fi
    if [ "$ON_PI" = no ]; then skipped "not a Raspberry Pi"; return 0; fi
    if command -v raspi-config >/dev/null; then
        # get_spi prints 0 when SPI is on (raspi-config's own convention).
        if [ "$(raspi-config nonint get_spi)" = 0 ]; then
            ok "SPI is enabled"
        elif changed "enable SPI with raspi-config (takes effect after a reboot)"; then
            raspi-config nonint do_spi 0
            REBOOT_FOR+=("SPI")
        fi
    else
        ensure_boot_line "dtparam=spi=on"
    fi
    # Bookworm's libcamera finds the camera by itself unless detection was switched off.
    if [ -n "$BOOT_CONFIG" ] && grep -q '^camera_auto_detect=0' "$BOOT_CONFIG"; then
        note "camera_auto_detect=0 in $BOOT_CONFIG: make sure a dtoverlay= line names your camera"
    elif [ -n "$BOOT_CONFIG" ] && ! grep -q '^camera_auto_detect=1' "$BOOT_CONFIG" \
        && ! grep -q '^dtoverlay=\(imx\|ov\)' "$BOOT_CONFIG"; then
        ensure_boot_line "camera_auto_detect=1"
    else
        ok "the camera is detected at boot"
    fi
    return 0
}

ensure_user() {
    step "system user '$USER_NAME' (groups ${DEVICE_GROUPS[*]})"
    if [ "$ON_SYSTEM" = no ]; then skipped "--root: the running system's users are left alone"; return 0; fi
    # What is missing is reported here; systemd-sysusers then creates it from the shared declaration.
    local group to_create=no
    for group in "${DEVICE_GROUPS[@]}"; do
        # Raspberry Pi OS has them all; elsewhere the unit still needs them to exist to start.
        if getent group "$group" >/dev/null; then
            ok "group $group exists"
        else
            changed "create system group $group (not on this machine; Raspberry Pi OS has it)" && to_create=yes
        fi
    done
    if getent passwd "$USER_NAME" >/dev/null; then
        ok "user $USER_NAME exists"
    else
        changed "create system user $USER_NAME (no login, home $DATA_DIR)" && to_create=yes
    fi
    local member
    for group in "${DEVICE_GROUPS[@]}"; do
        member=no
        if getent passwd "$USER_NAME" >/dev/null && id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$group"; then
            member=yes
        fi
        if [ "$member" = yes ]; then
            ok "$USER_NAME is in $group"
        else
            changed "add $USER_NAME to $group" && to_create=yes
        fi
    done
    if [ "$to_create" = yes ]; then
        command -v systemd-sysusers >/dev/null || die "systemd-sysusers not found: this installer is for systemd systems (Raspberry Pi OS, Debian)"
        systemd-sysusers "$SYSUSERS_FILE"
    fi
    return 0
}

# Finds (or builds) the binary to install. Sets BINARY.
find_binary() {
    if [ -n "$BINARY" ]; then
        [ -x "$BINARY" ] || die "--binary $BINARY is not an executable file"
        return 0
    fi
    local candidate
    for candidate in "$SOURCE_DIR/target/release/facereko" \
        "$SOURCE_DIR/target/$(uname -m)-unknown-linux-gnu/release/facereko"; do
        if [ -x "$candidate" ]; then
            BINARY="$candidate"
            return 0
        fi
    done
    [ -f "$SOURCE_DIR/Cargo.toml" ] || die "no binary: pass --binary PATH"
    BINARY="$SOURCE_DIR/target/release/facereko"
    if [ "$DRY_RUN" = yes ]; then
        printf '   would build %s with cargo build --release (about 10 minutes on a Pi 4)\n' "$BINARY"
        return 0
    fi
    command -v cargo >/dev/null || die "no binary at $BINARY and no cargo to build it: install Rust (https://rustup.rs) or pass --binary PATH"
    printf '   building %s with cargo build --release (about 10 minutes on a Pi 4)\n' "$BINARY"
    (cd "$SOURCE_DIR" && cargo build --release --locked)
}

install_files() {
    step "binary, unit and documentation"
    find_binary
    if [ -x "$BINARY" ]; then
        ensure_file "$BINARY" "$BIN_PATH" 755 root:root
    else
        changed "install $BIN_PATH (from the build above)" || true
    fi
    local before
    before=$CHANGES
    ensure_file "$SOURCE_DIR/systemd/facereko.service" "$UNIT_FILE" 644 root:root
    if [ "$MARIADB" = yes ]; then
        ensure_dir "$DROPIN_DIR" 755 root:root
        ensure_file "$SOURCE_DIR/systemd/facereko.service.d/mariadb.conf" "$DROPIN_FILE" 644 root:root
    elif [ -e "$R$DROPIN_FILE" ]; then
        note "$DROPIN_FILE is kept from an earlier MariaDB install; remove it to run without MariaDB"
    fi
    [ "$CHANGES" -eq "$before" ] || UNIT_CHANGED=yes
    # The service does not read its documentation: a new README alone is no reason to restart it.
    before=$CHANGES
    ensure_file "$SOURCE_DIR/README.md" "$DOC_FILE" 644 root:root
    DOC_CHANGES=$((CHANGES - before))
    return 0
}

# The example config, adapted to this machine: real hardware on a Pi, MariaDB when set up.
generated_config() {
    local text
    text="$(cat "$SOURCE_DIR/facereko.example.toml")"
    if [ "$MARIADB" = yes ]; then
        text="$(sed 's|^url = "sqlite://facereko.db"$|# MariaDB set up by install.sh; the password reaches the service as a systemd credential\
# (FACEREKO_DATABASE__PASSWORD_FILE, from /etc/facereko/db-password).\
url = "mysql://facereko@localhost/facereko"|' <<<"$text")"
    fi
    if [ "$CONFIG_FOR_PI" = yes ]; then
        text="$(sed -e 's|^leds = "simulated"$|leds = "gpio"|' -e 's|^buzzer = "simulated"$|buzzer = "gpio"|' \
            -e 's|^lock = "simulated"$|lock = "gpio"|' -e 's|^reader = "simulated"$|reader = "mfrc522"|' \
            -e 's|^camera = "simulated"$|camera = "rpicam"|' -e 's|^bell = "simulated"$|bell = "none"|' \
            -e 's|^camera = "/var/lib/facereko/sim-camera"$|# camera = "/var/lib/facereko/sim-camera"|' <<<"$text")"
    fi
    # The web app on every network: its accounts are made by the owner (no default credentials).
    text="$(sed '/^\[web\]$/,/^\[/ s|^listen = ""$|listen = "0.0.0.0:8080"|' <<<"$text")"
    printf '# FaceReko settings, made from the example below for this kind of machine. They are yours to edit:\n'
    printf '# neither install.sh nor a package upgrade overwrites your changes.\n'
    printf '%s\n' "$text"
}

install_config() {
    step "configuration and data"
    apply_tmpfiles d
    if [ -e "$R$CONFIG_FILE" ]; then
        ok "$CONFIG_FILE exists; it is yours and is never overwritten"
        if [ "$MARIADB" = yes ] && ! grep -q '^url = "mysql://' "$R$CONFIG_FILE"; then
            note "$CONFIG_FILE does not use MariaDB: set url = \"mysql://facereko@localhost/facereko\" under [database] to switch"
        fi
    elif changed "write $CONFIG_FILE (the example config for this machine)"; then
        generated_config >"$R$CONFIG_FILE.new"
        chmod 640 "$R$CONFIG_FILE.new"
        [ "$ON_SYSTEM" = no ] || chown root:$USER_NAME "$R$CONFIG_FILE.new"
        mv "$R$CONFIG_FILE.new" "$R$CONFIG_FILE"
    fi
    apply_tmpfiles z
    if [ "$CONFIG_FOR_PI" = no ]; then
        # Off a Pi the config uses the simulated camera, whose pictures live here.
        ensure_dir "$DATA_DIR/sim-camera" 750 $USER_NAME:$USER_NAME
    fi
    return 0
}

# copy_models SOURCE VERB NOTE: every file under SOURCE that differs from the models folder's copy
# is copied in (0644, owned by root), reported as "VERB <file>NOTE".
copy_models() {
    local source="$1" verb="$2" note="$3" file relative
    while IFS= read -r -d '' file; do
        relative="${file#"$source"/}"
        if cmp -s "$file" "$R$MODELS_DIR/$relative"; then
            continue
        fi
        changed "$verb $relative$note" || continue
        mkdir -p "$(dirname "$R$MODELS_DIR/$relative")"
        cp "$file" "$R$MODELS_DIR/$relative.new"
        chmod 644 "$R$MODELS_DIR/$relative.new"
        mv -f "$R$MODELS_DIR/$relative.new" "$R$MODELS_DIR/$relative"
    done < <(find "$source" -type f ! -name '.*' -print0 | sort -z)
}

# Who downloads and unpacks the archives: never root. The service user on the system; under --root
# (that user may not exist on this machine) nobody; the invoking user when not run as root.
fetch_user() {
    if [ "$(id -u)" -ne 0 ]; then
        id -un
    elif [ "$ON_SYSTEM" = yes ]; then
        printf '%s\n' "$USER_NAME"
    else
        printf 'nobody\n'
    fi
}

fetch_models() {
    step "face models in $MODELS_DIR"
    if [ "$MODELS" = no ]; then skipped "--no-models; fetch them later by running install.sh again"; return 0; fi
    if [ -n "$MODELS_FROM" ]; then
        copy_models "$MODELS_FROM" copy " from $MODELS_FROM"
    fi
    local user model all_present=yes
    user="$(fetch_user)"
    for model in centerface.onnx face_recognition_model-weights_manifest.json face_recognition_model.bin; do
        [ -f "$R$MODELS_DIR/$model" ] || all_present=no
    done
    if [ "$DRY_RUN" = yes ]; then
        if [ "$all_present" = yes ] || [ -n "$MODELS_FROM" ]; then
            ok "the models are present; the real run verifies their checksums as $user"
        else
            changed "download the models as $user (facereko models fetch: pinned archives, checksums verified)" || true
        fi
        return 0
    fi
    # The fetch runs unprivileged in a scratch folder that starts as a copy of the models folder:
    # it keeps the files whose checksum matches and downloads the others; root then copies in only
    # what differs.
    local staging bin output status=0
    staging="$(mktemp -d)"
    mkdir "$staging/models"
    cp -R "$R$MODELS_DIR/." "$staging/models/"
    bin="$R$BIN_PATH"
    if [ "$ON_SYSTEM" = no ]; then
        # The target tree may be private to root: the user runs a copy of the binary.
        cp "$bin" "$staging/facereko"
        bin="$staging/facereko"
    fi
    if [ "$user" = "$(id -un)" ]; then
        output="$(TMPDIR="$staging" "$bin" models fetch --dir "$staging/models" 2>&1)" || status=$?
    else
        chown -R "$user:" "$staging"
        output="$(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --no-new-privs -- \
            env HOME="$staging" TMPDIR="$staging" "$bin" models fetch --dir "$staging/models" 2>&1)" || status=$?
    fi
    output="${output//"$staging/models"/"$MODELS_DIR"}"
    if [ "$status" -ne 0 ]; then
        rm -rf "$staging"
        printf '%s\n' "$output" | sed 's/^/   /'
        die "fetching the face models as $user failed (above); fix it and run install.sh again"
    fi
    # "are up to date" only when nothing was fetched ("0 already up to date" is a fetch).
    if grep -q ' are up to date' <<<"$output"; then
        ok "$(tail -n 1 <<<"$output"), as $user"
    else
        printf '%s\n' "$output" | sed 's/^/     /'
    fi
    copy_models "$staging/models" install " (downloaded and verified as $user)"
    rm -rf "$staging"
    # The staging folder was the user's until now: check what landed in root's folder once more,
    # as root, from the disk alone.
    if ! output="$("$R$BIN_PATH" models verify --dir "$R$MODELS_DIR" 2>&1)"; then
        printf '%s\n' "$output" | sed 's/^/   /'
        die "the face models in $MODELS_DIR do not match their pinned checksums (above); run install.sh again"
    fi
    return 0
}

check_config() {
    step "configuration check"
    if [ "$ON_SYSTEM" = no ]; then skipped "--root: the config names paths of the target system"; return 0; fi
    if [ "$DRY_RUN" = yes ] && [ ! -e "$CONFIG_FILE" ]; then skipped "dry run: no config yet"; return 0; fi
    if [ ! -x "$BIN_PATH" ]; then skipped "no binary installed yet"; return 0; fi
    local output secret=()
    # As the service sees it: with MariaDB, the password comes from the file (the drop-in's credential).
    [ "$MARIADB" = no ] || secret=("FACEREKO_DATABASE__PASSWORD_FILE=$PASSWORD_FILE")
    if output="$(env "${secret[@]}" "$BIN_PATH" --config "$CONFIG_FILE" config check 2>&1)"; then
        ok "facereko config check passes"
    else
        CONFIG_BROKEN=yes
        printf '%s\n' "$output" | sed 's/^/   /'
        note "fix $CONFIG_FILE as shown above, then: sudo systemctl restart facereko"
    fi
    return 0
}

start_service() {
    step "service facereko.service"
    if [ "$START" = no ]; then skipped "--no-start"; return 0; fi
    local root=()
    [ "$ON_SYSTEM" = yes ] || root=(--root="$ROOT")
    command -v systemctl >/dev/null || { skipped "no systemctl on this machine"; return 0; }
    if [ "$(systemctl "${root[@]}" is-enabled facereko.service 2>/dev/null || true)" = enabled ]; then
        ok "enabled (starts at boot)"
    else
        changed "enable facereko.service (starts at boot)" && systemctl "${root[@]}" --quiet enable facereko.service
    fi
    if [ "$ON_SYSTEM" = no ]; then skipped "--root: the service is started when the target system boots"; return 0; fi
    if [ "$SYSTEMD_RUNNING" = no ]; then skipped "systemd is not running here, as in a container: start facereko run by hand"; return 0; fi
    if [ "$UNIT_CHANGED" = yes ]; then
        changed "reload systemd (the unit changed)" && systemctl daemon-reload
    fi
    if [ "${CONFIG_BROKEN:-no}" = yes ]; then
        note "not (re)started: the configuration has problems (above)"
    elif ! systemctl is-active --quiet facereko.service; then
        changed "start facereko.service" && systemctl start facereko.service
    elif [ "$CHANGES" -gt "$DOC_CHANGES" ]; then
        changed "restart facereko.service (something it uses changed)" && systemctl restart facereko.service
    else
        ok "running"
    fi
    return 0
}

finish() {
    step "done"
    if [ "${#REBOOT_FOR[@]}" -gt 0 ]; then
        note "reboot to turn on: ${REBOOT_FOR[*]} (sudo reboot)"
    fi
    if [ "${#NOTES[@]}" -gt 0 ]; then
        printf '\nPlease note:\n'
        printf '  - %s\n' "${NOTES[@]}"
    fi
    # Who runs the admin commands: with SQLite the service user, who owns the database file; with
    # MariaDB root, who alone may read the database password.
    local admin how
    if [ "$MARIADB" = yes ]; then
        admin="sudo env FACEREKO_DATABASE__PASSWORD_FILE=$PASSWORD_FILE facereko"
        how="as root with the database password file (readable by root only)"
    else
        admin="sudo -u $USER_NAME facereko"
        how="as the service user (it owns the database and the control socket)"
    fi
    local web tls config_text
    # The config as installed; in a dry run, as it would be written.
    config_text="$(if [ -r "$R$CONFIG_FILE" ]; then cat "$R$CONFIG_FILE"; else generated_config; fi)" || config_text=""
    web="$(sed -n '/^\[web\]$/,/^\[/ s|^listen = "\(.*\)"$|\1|p' <<<"$config_text" | head -n 1)" || web=""
    tls="$(sed -n '/^\[web\]$/,/^\[/ s|^tls = "\(.*\)"$|\1|p' <<<"$config_text" | head -n 1)" || tls=""
    if [ -n "$web" ]; then
        if [ -n "$tls" ] && [ "$tls" != off ]; then
            printf '\nThe web app listens on %s (https://%s.local:%s/ from this network).\n' \
                "$web" "$(hostname)" "${web##*:}"
        else
            printf '\nThe web app listens on %s (http://%s:%s/ from this network).\n' "$web" "$(hostname)" "${web##*:}"
        fi
        if [ "$tls" = self ]; then
            printf 'It serves https with its own certificate authority, made at the first start: install it once on\n'
            printf 'each phone and computer from http://%s.local:%s/certificate (compare its fingerprint with\n' \
                "$(hostname)" "${web##*:}"
            printf 'journalctl -u facereko | grep fingerprint).\n'
        fi
        printf 'Make its first admin\n'
        printf 'account first, %s; there is no default account:\n\n' "$how"
        printf '  %s user add admin     # asks for the password twice\n' "$admin"
    else
        printf '\nThe web app is off (web.listen is empty in %s).\n' "$CONFIG_FILE"
    fi
    printf '\nThe door can also be managed from the command line, %s:\n\n' "$how"
    local width=$((${#admin} + 41))
    printf "  %-${width}s # %s\n" \
        "$admin status" "is the door up and armed?" \
        "$admin person add \"Ada\"" "adds a person" \
        "$admin hw read-card" "the UID of each tapped card (stop the service first)" \
        "$admin card add 04A1B2C3 --person \"Ada\"" "binds a card to the person" \
        "$admin enroll --person \"Ada\" ada1.jpg ada2.jpg" "the face, from pictures the command can read" \
        "journalctl -u facereko -f" "the daemon's log, one line per attempt"
    printf '\nSettings: %s (after editing: sudo facereko config check && sudo systemctl restart facereko)\n' \
        "$CONFIG_FILE"
    if [ "$DRY_RUN" = yes ]; then
        printf '\nsummary: %d change(s) planned (dry run, nothing was changed)\n' "$CHANGES"
    else
        printf '\nsummary: %d change(s)\n' "$CHANGES"
    fi
}

# The example config, adapted as generated_config does, for the Debian packages' conffile.
if [ "$PRINT_CONFIG" = yes ]; then
    generated_config
    exit 0
fi
banner
install_packages
enable_spi_and_camera
ensure_user
install_files
install_config
setup_mariadb
fetch_models
check_config
start_service
finish
