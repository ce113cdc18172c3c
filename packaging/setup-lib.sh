# shellcheck shell=bash
# Shell functions shared by install.sh and the facereko-mariadb package's postinst, which has them
# as /usr/share/facereko/setup-lib.sh: the reporting of each step (`changed: ...`, `ok (...)`, or
# `would: ...` in a dry run), file attributes, and the MariaDB database, user and password.
#
# The caller defines die, and sets DRY_RUN (yes/no), R (the target root, empty for /), ON_SYSTEM
# (yes unless under --root), USER_NAME, DB_NAME, PASSWORD_FILE, MARIADB (yes/no), MARIADB_SOCKET
# (empty: the system's) and SYSTEMD_RUNNING (yes/no).

CHANGES=0
NOTES=()

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok (%s)\n' "$*"; }
skipped() { printf '   skipped (%s)\n' "$*"; }
note() { NOTES+=("$*"); printf '   note: %s\n' "$*"; }

# Reports a change: done in a real run, planned in a dry run. Returns 1 in a dry run, so that
# `changed "..." && command` runs the command only for real; alone, it is `changed "..." || true`.
changed() {
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = yes ]; then
        printf '   would: %s\n' "$*"
        return 1
    fi
    printf '   changed: %s\n' "$*"
}

# Ownership is only set on the real system: under --root the owners may not exist.
owner_of() { stat -c '%U:%G' "$1"; }
mode_of() { stat -c '%a' "$1"; }

# ensure_attrs PATH MODE OWNER:GROUP: the mode (e.g. 640) and, on the real system, the owner.
ensure_attrs() {
    local path="$1" mode="$2" owner="$3" target="$R$1"
    if [ ! -e "$target" ]; then
        return 0 # a dry run that would have created it has already counted that
    fi
    if [ "$(mode_of "$target")" != "$mode" ]; then
        changed "$path: mode $(mode_of "$target") -> $mode" && chmod "$mode" "$target"
    fi
    if [ "$ON_SYSTEM" = yes ] && [ "$(owner_of "$target")" != "$owner" ]; then
        if [ "$DRY_RUN" = no ] && ! getent passwd "${owner%%:*}" >/dev/null; then
            die "cannot give $path to $owner: the user does not exist"
        fi
        changed "$path: owner $(owner_of "$target") -> $owner" && chown "$owner" "$target"
    fi
    return 0
}

# mariadb_root ARGS...: the mariadb client as root over the Unix socket (socket authentication, no password).
mariadb_root() {
    local socket=()
    [ -z "$MARIADB_SOCKET" ] || socket=(--socket="$MARIADB_SOCKET")
    mariadb --no-defaults "${socket[@]}" --user=root --batch --skip-column-names "$@"
}

# mariadb_as_app: whether the facereko user logs in with the stored password.
mariadb_as_app() {
    local options status socket_line=
    [ -z "$MARIADB_SOCKET" ] || socket_line="socket=$MARIADB_SOCKET"
    options="$(mktemp)"
    # An option file (0600) keeps the password off the command line, where `ps` would show it.
    printf '[client]\nuser=%s\npassword=%s\n%s\n' "$USER_NAME" "$(cat "$R$PASSWORD_FILE")" "$socket_line" >"$options"
    status=0
    mariadb --defaults-file="$options" --batch --execute='SELECT 1' "$DB_NAME" >/dev/null 2>&1 || status=$?
    rm -f "$options"
    return "$status"
}

setup_mariadb() {
    step "MariaDB database '$DB_NAME' and user '$USER_NAME'@'localhost'"
    if [ "$MARIADB" = no ]; then
        skipped "${MARIADB_SKIPPED:---no-mariadb: the embedded SQLite database is used}"
        return 0
    fi
    if [ -z "$MARIADB_SOCKET" ] && [ "$SYSTEMD_RUNNING" = yes ]; then
        if systemctl is-active --quiet mariadb; then
            ok "mariadb.service is running"
        elif changed "enable and start mariadb.service"; then
            systemctl enable --now mariadb
        fi
    fi
    if ! command -v mariadb >/dev/null || ! mariadb_root --execute='SELECT 1' >/dev/null 2>&1; then
        [ "$DRY_RUN" = yes ] || die "cannot reach MariaDB as root over its socket${MARIADB_SOCKET:+ $MARIADB_SOCKET}: is mariadb-server installed and running?"
        changed "create database $DB_NAME, user $USER_NAME@localhost and its password in $PASSWORD_FILE (MariaDB is not reachable as root yet)" || true
        return 0
    fi

    # The password: generated once, kept in a root-only file, never printed.
    if [ -e "$R$PASSWORD_FILE" ]; then
        ok "$PASSWORD_FILE exists and is kept"
    elif changed "generate the database password into $PASSWORD_FILE (0600 root:root)"; then
        local password
        password="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c1-32)"
        [ "${#password}" -ge 24 ] || die "could not generate a password from /dev/urandom"
        (umask 077 && printf '%s\n' "$password" >"$R$PASSWORD_FILE.new")
        [ "$ON_SYSTEM" = no ] || chown root:root "$R$PASSWORD_FILE.new"
        mv "$R$PASSWORD_FILE.new" "$R$PASSWORD_FILE"
    fi
    ensure_attrs "$PASSWORD_FILE" 600 root:root

    if [ -n "$(mariadb_root --execute="SHOW DATABASES LIKE '$DB_NAME'")" ]; then
        ok "database $DB_NAME exists"
    else
        changed "create database $DB_NAME" \
            && mariadb_root --execute="CREATE DATABASE \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    fi

    local user_exists
    user_exists="$(mariadb_root --execute="SELECT COUNT(*) FROM mysql.user WHERE User='$USER_NAME' AND Host='localhost'")"
    # The SQL goes through stdin so that the password is not on any command line.
    if [ "$user_exists" = 0 ]; then
        changed "create user $USER_NAME@localhost with the password from $PASSWORD_FILE" \
            && printf "CREATE USER '%s'@'localhost' IDENTIFIED BY '%s';\n" "$USER_NAME" "$(cat "$R$PASSWORD_FILE")" | mariadb_root
    elif [ ! -e "$R$PASSWORD_FILE" ]; then
        changed "set the password of $USER_NAME@localhost to the generated one" || true
    elif mariadb_as_app; then
        ok "user $USER_NAME@localhost logs in with the password from $PASSWORD_FILE"
    else
        changed "set the password of $USER_NAME@localhost to the one in $PASSWORD_FILE" \
            && printf "ALTER USER '%s'@'localhost' IDENTIFIED BY '%s';\n" "$USER_NAME" "$(cat "$R$PASSWORD_FILE")" | mariadb_root
    fi

    if [ "$user_exists" != 0 ] && mariadb_root --execute="SHOW GRANTS FOR '$USER_NAME'@'localhost'" \
        | grep -q "GRANT ALL PRIVILEGES ON \`$DB_NAME\`\.\*"; then
        ok "$USER_NAME@localhost has all privileges on $DB_NAME"
    else
        changed "grant $USER_NAME@localhost all privileges on $DB_NAME" \
            && mariadb_root --execute="GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$USER_NAME'@'localhost'"
    fi
    return 0
}
