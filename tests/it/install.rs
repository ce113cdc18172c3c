//! install.sh: clean under shellcheck; a dry run prints the plan and touches nothing; a real run
//! into a scratch root (`--root`) installs everything, and a second run changes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common;
use crate::common::mariadb::MariaDb;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs install.sh with `args`, which must succeed; returns its standard output.
fn install(args: &[&str]) -> String {
    let output = Command::new("bash").arg(repo().join("install.sh")).args(args).output().expect("bash runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "install.sh {args:?} failed:\nstdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// The number in the last line, `summary: N change(s)` (a dry run adds "planned").
fn changes(output: &str) -> usize {
    let last = output.lines().last().unwrap_or_default();
    last.strip_prefix("summary: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line at the end of:\n{output}"))
}

/// Every path under `root` with its type, mode and content (sha256) or link target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, into);
                format!("dir {mode:o}")
            } else {
                format!("file {mode:o} {:x}", Sha256::digest(std::fs::read(&path).unwrap()))
            };
            into.insert(path.strip_prefix(root).unwrap().to_owned(), what);
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// The example config with the web app on, as install.sh writes it.
fn example_with_web_app() -> String {
    let example = facereko::config::EXAMPLE;
    let web = example.find("\n[web]\n").expect("the example has a [web] section");
    let (before, after) = example.split_at(web);
    format!("{before}{}", after.replacen("\nlisten = \"\"\n", "\nlisten = \"0.0.0.0:8080\"\n", 1))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// The flags of every real run here: files under `root`, nothing on the running system.
fn root_args<'a>(root: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--root", root.to_str().unwrap(), "--binary", common::BIN, "--skip-packages"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn install_sh_passes_shellcheck() {
    let output = Command::new("shellcheck")
        .arg(repo().join("install.sh"))
        .output()
        .expect("shellcheck is missing: install it with `apt-get install shellcheck` (tests/run.sh does)");
    assert!(
        output.status.success(),
        "shellcheck found problems in install.sh:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let args = root_args(root.path(), &["--dry-run", "--no-mariadb", "--no-models"]);
    let first = install(&args);
    for planned in [
        "would: install /usr/local/bin/facereko",
        "would: install /etc/systemd/system/facereko.service",
        "would: create /etc/facereko (750 root:facereko)",
        "would: write /etc/facereko/config.toml",
        "would: create /var/lib/facereko (750 facereko:facereko)",
        "would: enable facereko.service",
        "skipped (--root: the running system's users are left alone)",
    ] {
        assert!(first.contains(planned), "the plan lacks {planned:?}:\n{first}");
    }
    assert!(changes(&first) >= 6, "{first}");
    assert!(first.ends_with("planned (dry run, nothing was changed)\n"), "{first}");
    assert!(snapshot(root.path()).is_empty(), "a dry run wrote {:?}", snapshot(root.path()));
    assert_eq!(install(&args), first, "a second dry run plans the same");
    assert!(snapshot(root.path()).is_empty());
}

/// On the machine itself (no --root), as CI runs it: every check of the running system (packages,
/// users, groups, MariaDB, systemd) is made, read-only, and two runs agree.
#[test]
fn dry_run_on_this_machine_is_read_only_and_repeatable() {
    let config_dir = Path::new("/etc/facereko");
    let existed = config_dir.exists();
    let args = ["--dry-run", "--binary", common::BIN];
    let first = install(&args);
    assert!(first.contains("(dry run: nothing will be changed)"), "{first}");
    assert!(first.contains("== MariaDB database 'facereko'"), "{first}");
    assert_eq!(install(&args), first, "a second dry run plans the same");
    assert_eq!(config_dir.exists(), existed, "a dry run created or removed {}", config_dir.display());
}

#[test]
fn second_real_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let models = common::models_dir();
    let args = root_args(r, &["--no-mariadb", "--models-from", models.to_str().unwrap()]);

    let first = install(&args);
    assert!(changes(&first) > 0, "{first}");
    assert!(first.contains("changed: copy centerface.onnx from"), "{first}");
    let installed = snapshot(r);

    let second = install(&args);
    assert_eq!(changes(&second), 0, "the second run changed something:\n{second}");
    assert!(!second.contains("changed:"), "{second}");
    // The installed binary verified the copied models' checksums, without fetching anything.
    assert!(second.contains("are up to date"), "{second}");
    assert_eq!(snapshot(r), installed, "the second run touched files");

    assert_eq!(std::fs::read(r.join("usr/local/bin/facereko")).unwrap(), std::fs::read(common::BIN).unwrap());
    assert_eq!(mode(&r.join("usr/local/bin/facereko")), 0o755);
    let unit = r.join("etc/systemd/system/facereko.service");
    assert_eq!(std::fs::read(&unit).unwrap(), std::fs::read(repo().join("systemd/facereko.service")).unwrap());
    assert!(!r.join("etc/systemd/system/facereko.service.d").exists(), "no MariaDB drop-in with SQLite");
    assert_eq!(
        std::fs::read_link(r.join("etc/systemd/system/multi-user.target.wants/facereko.service")).unwrap(),
        Path::new("/etc/systemd/system/facereko.service"),
        "enabled for the target system's boot"
    );
    assert_eq!(mode(&r.join("etc/facereko")), 0o750);
    assert_eq!(mode(&r.join("etc/facereko/config.toml")), 0o640);
    assert_eq!(mode(&r.join("var/lib/facereko")), 0o750);
    let config = std::fs::read_to_string(r.join("etc/facereko/config.toml")).unwrap();
    assert!(config.ends_with(&example_with_web_app()), "off a Pi with SQLite the config is the example:\n{config}");
    assert!(!r.join("etc/facereko/db-password").exists(), "no database password with SQLite");

    // The installed binary takes the installed config (its paths re-aimed at the scratch root).
    let data = r.join("var/lib/facereko");
    let check = Command::new(r.join("usr/local/bin/facereko"))
        .args(["--config", r.join("etc/facereko/config.toml").to_str().unwrap(), "config", "check"])
        .env("FACEREKO_DATA_DIR", &data)
        .env("FACEREKO_ENGINE__MODELS_DIR", data.join("models"))
        .env("FACEREKO_HARDWARE__SIMULATED__CAMERA", data.join("sim-camera"))
        .output()
        .unwrap();
    assert!(check.status.success(), "config check: {}", String::from_utf8_lossy(&check.stderr));

    // What was installed passes systemd-analyze verify.
    let scratch = tempfile::tempdir().unwrap();
    common::assert_unit_verifies(&common::unit_under_test(&unit, &[], scratch.path()));
}

/// The real thing, not under `--root`: install.sh runs twice as root on a throw-away copy of this
/// machine (an overlay over `/` in a private mount namespace, its changes in a tmpfs that vanishes
/// with the namespace), creating the groups, the user, the owners and modes, running the
/// installed binary's config check and enabling the unit. Only MariaDB and packages are left
/// out: the MariaDB steps have their own test, and apt-get would download. The installed binary
/// is a wrapper that logs who runs it, which shows that the models are fetched as the service
/// user, never as root.
#[test]
fn real_install_on_a_throwaway_copy_of_this_machine() {
    // The facereko user and /etc/facereko of this machine itself, which must stay as they are.
    let host_state = || {
        let user = Command::new("getent").args(["passwd", "facereko"]).output().unwrap().stdout;
        (user, Path::new("/etc/facereko").exists(), Path::new("/usr/local/bin/facereko").exists())
    };
    let host_before = host_state();
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path();
    let script = r#"
set -euo pipefail
mkdir -p "$O/layer"
mount -t tmpfs tmpfs "$O/layer"
mkdir -p "$O/layer/upper" "$O/layer/work" "$O/layer/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$O/layer/upper,workdir=$O/layer/work" "$O/layer/merged"
M="$O/layer/merged"
for fs in proc sys dev; do mount --rbind "/$fs" "$M/$fs"; done
# Everything the installer uses, inside the copy (the originals may be on other mounts).
mkdir -p "$M/opt/src/systemd" "$M/opt/src/packaging" "$M/opt/models"
cp -r "$REPO/install.sh" "$REPO/README.md" "$REPO/facereko.example.toml" "$M/opt/src/"
cp -r "$REPO/systemd/." "$M/opt/src/systemd/"
cp "$REPO/packaging/setup-lib.sh" "$M/opt/src/packaging/"
cp -r "$MODELS/." "$M/opt/models/"
cp "$BIN" "$M/opt/facereko-real"
printf '#!/bin/sh\necho "$(id -un) $*" >>/opt/runs.txt\nexec /opt/facereko-real "$@"\n' >"$M/opt/facereko"
chmod 755 "$M/opt/facereko"
install -m 666 /dev/null "$M/opt/runs.txt"
args=(--skip-packages --no-mariadb --binary /opt/facereko --models-from /opt/models)
chroot "$M" /opt/src/install.sh "${args[@]}" >"$O/first.txt" 2>&1
chroot "$M" /opt/src/install.sh "${args[@]}" >"$O/second.txt" 2>&1
chroot "$M" id -nG facereko >"$O/groups.txt"
chroot "$M" stat -c '%n %U:%G %a' /etc/facereko /etc/facereko/config.toml /var/lib/facereko \
    /usr/local/bin/facereko /etc/systemd/system/facereko.service >"$O/owners.txt"
cp "$M/opt/runs.txt" "$O/runs.txt"
"#;
    let status = Command::new("unshare")
        .args(["--mount", "bash", "-c", script])
        .env("O", o)
        .env("REPO", repo())
        .env("BIN", common::BIN)
        .env("MODELS", common::models_dir())
        .status()
        .expect("unshare (util-linux) runs");
    let read = |name: &str| std::fs::read_to_string(o.join(name)).unwrap_or_default();
    assert!(
        status.success(),
        "the install in a private mount namespace failed (it needs root, as install.sh does)\nfirst run:\n{}\nsecond run:\n{}",
        read("first.txt"),
        read("second.txt")
    );

    let first = read("first.txt");
    for done in [
        "changed: create system group gpio",
        "changed: create system user facereko (no login, home /var/lib/facereko)",
        "changed: add facereko to spi",
        "changed: install /usr/local/bin/facereko",
        "changed: write /etc/facereko/config.toml",
        "ok (facereko config check passes)",
        "changed: enable facereko.service",
    ] {
        assert!(first.contains(done), "{done:?} missing from the first run:\n{first}");
    }
    let second = read("second.txt");
    assert_eq!(changes(&second), 0, "the second run changed something:\n{second}");
    assert!(second.contains("checksums verified), as facereko"), "{second}");

    let runs = read("runs.txt");
    let fetches: Vec<&str> = runs.lines().filter(|line| line.contains(" models fetch ")).collect();
    assert_eq!(fetches.len(), 2, "one fetch per run:\n{runs}");
    assert!(fetches.iter().all(|line| line.starts_with("facereko models fetch --dir ")), "{runs}");
    assert!(runs.lines().any(|line| line.starts_with("root --config ")), "the wrapper logs root's runs too:\n{runs}");
    let verified = runs.lines().filter(|line| line.starts_with("root models verify --dir ")).count();
    assert_eq!(verified, 2, "root checks what landed in its models folder after each fetch:\n{runs}");

    let groups = read("groups.txt");
    for group in ["facereko", "gpio", "spi", "video"] {
        assert!(groups.split_whitespace().any(|g| g == group), "facereko is not in {group}: {groups}");
    }
    assert_eq!(
        read("owners.txt"),
        "/etc/facereko root:facereko 750\n/etc/facereko/config.toml root:facereko 640\n\
         /var/lib/facereko facereko:facereko 750\n/usr/local/bin/facereko root:root 755\n\
         /etc/systemd/system/facereko.service root:root 644\n"
    );
    assert_eq!(host_state(), host_before, "the throw-away install leaked onto this machine");
}

#[test]
fn edited_config_is_kept_and_missing_files_come_back() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let args = root_args(r, &["--no-mariadb", "--no-models", "--no-start"]);
    install(&args);

    let config = r.join("etc/facereko/config.toml");
    let edited = "data_dir = \"/srv/door\"\n[door]\nid = \"back\"\n";
    std::fs::write(&config, edited).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(r.join("etc/systemd/system/facereko.service")).unwrap();

    let again = install(&args);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited, "install.sh overwrote the user's config");
    assert!(again.contains("config.toml exists; it is yours and is never overwritten"), "{again}");
    assert!(again.contains("changed: /etc/facereko/config.toml: mode 644 -> 640"), "{again}");
    assert!(again.contains("changed: install /etc/systemd/system/facereko.service"), "{again}");
    assert_eq!(changes(&again), 2, "{again}");
    assert_eq!(mode(&config), 0o640);
    assert_eq!(changes(&install(&args)), 0);
}

/// `--pi` (preparing a Pi's files on another machine) writes a config for the Pi's hardware that
/// the binary accepts.
#[test]
fn config_for_a_pi_names_the_real_hardware() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let output = install(&root_args(r, &["--pi", "--no-mariadb", "--no-models", "--no-start"]));
    assert!(output.contains("hardware in the config: Raspberry Pi"), "{output}");
    // The firmware steps still need a real Pi.
    assert!(output.contains("skipped (--root: the running system's firmware is left alone)"), "{output}");
    let config_path = r.join("etc/facereko/config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let lines =
        ["leds = \"gpio\"", "buzzer = \"gpio\"", "lock = \"gpio\"", "reader = \"mfrc522\"", "camera = \"rpicam\""];
    // A bell button only once one is wired (bell = "gpio").
    for line in lines.iter().chain(&["bell = \"none\""]) {
        assert!(config.contains(&format!("\n{line}\n")), "{line} missing:\n{config}");
    }
    assert!(!r.join("var/lib/facereko/sim-camera").exists(), "no simulated camera on a Pi");

    let data = r.join("var/lib/facereko");
    let check = Command::new(common::BIN)
        .args(["--config", config_path.to_str().unwrap(), "config", "check"])
        // Only this test's settings: the test run's own FACEREKO_TEST_MODELS is no config key.
        .env_clear()
        .env("FACEREKO_DATA_DIR", &data)
        // No models were fetched here; this check is about the hardware keys.
        .env("FACEREKO_ENGINE__KIND", "simulated")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "config check of the Pi config: {shown}");
    assert!(!shown.contains("unknown"), "{shown}");
}

#[test]
fn mariadb_database_user_and_password_are_set_up_once() {
    // Always a server of our own: install.sh speaks to it as root over its socket, as on Debian.
    let db = MariaDb::throw_away();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let socket = db.socket();
    let args = root_args(r, &["--mariadb-socket", socket.to_str().unwrap(), "--no-models", "--no-start"]);

    let first = install(&args);
    assert!(first.contains("changed: generate the database password"), "{first}");
    assert!(first.contains("changed: create database facereko"), "{first}");
    assert!(first.contains("changed: create user facereko@localhost"), "{first}");
    let password_file = r.join("etc/facereko/db-password");
    let password = std::fs::read_to_string(&password_file).unwrap().trim_end().to_owned();
    assert!(password.len() >= 24 && password.chars().all(|c| c.is_ascii_alphanumeric()), "a strong password");
    assert!(!first.contains(&password), "install.sh printed the password");
    assert_eq!(mode(&password_file), 0o600);
    assert!(db.logs_in("facereko", &password, "facereko"), "the generated password opens the database");
    let grants = db.sql(None, "SHOW GRANTS FOR 'facereko'@'localhost'");
    assert!(grants.contains("GRANT ALL PRIVILEGES ON `facereko`.*"), "{grants}");

    let config = std::fs::read_to_string(r.join("etc/facereko/config.toml")).unwrap();
    assert!(config.contains("\nurl = \"mysql://facereko@localhost/facereko\"\n"), "{config}");
    assert!(!config.contains(&password), "the password stays out of the config");
    let dropin = r.join("etc/systemd/system/facereko.service.d/mariadb.conf");
    assert_eq!(
        std::fs::read(&dropin).unwrap(),
        std::fs::read(repo().join("systemd/facereko.service.d/mariadb.conf")).unwrap()
    );
    let scratch = tempfile::tempdir().unwrap();
    let unit = r.join("etc/systemd/system/facereko.service");
    common::assert_unit_verifies(&common::unit_under_test(&unit, &["mariadb.conf"], scratch.path()));

    let installed = snapshot(r);
    let second = install(&args);
    assert_eq!(changes(&second), 0, "{second}");
    assert!(second.contains("logs in with the password from /etc/facereko/db-password"), "{second}");
    assert_eq!(snapshot(r), installed, "the second run kept the password file");

    // Someone changed the database user's password: a re-run puts the stored one back.
    db.sql(None, "ALTER USER 'facereko'@'localhost' IDENTIFIED BY 'changed-elsewhere'");
    let repaired = install(&args);
    assert!(repaired.contains("changed: set the password of facereko@localhost"), "{repaired}");
    assert_eq!(changes(&repaired), 1, "{repaired}");
    assert!(db.logs_in("facereko", &password, "facereko"));
}
