//! The amd64 Debian package, installed for real on a throw-away copy of this machine (an overlay
//! over `/` in a private mount namespace, as `install::real_install_on_a_throwaway_copy_of_this_machine`
//! does): the maintainer scripts create the user, its groups and the folders with their modes,
//! enable the service, keep an edited config across an upgrade, keep the data on `remove` and
//! delete it on `purge`. `packaging/deb.sh host` (tests/run.sh runs it before the tests) builds the
//! package from the test build's binary and checks it with lintian.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

/// The package that `packaging/deb.sh host` made from this test build's binary.
fn amd64_package() -> PathBuf {
    let target = Path::new(common::BIN).parent().and_then(Path::parent).expect("the binary is in <target>/debug");
    let recorded = target.join("debian/amd64.path");
    let deb = std::fs::read_to_string(&recorded).map(|path| PathBuf::from(path.trim())).unwrap_or_else(|_| {
        panic!("no amd64 package ({} is missing): run `bash packaging/deb.sh host`", recorded.display())
    });
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    assert!(
        modified(&deb) >= modified(Path::new(common::BIN)),
        "{} is older than {}: run `bash packaging/deb.sh host` again",
        deb.display(),
        common::BIN
    );
    deb
}

#[test]
fn packaging_scripts_pass_shellcheck() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scripts = [
        "packaging/deb.sh",
        "packaging/setup-lib.sh",
        "packaging/deb/postinst",
        "packaging/deb/prerm",
        "packaging/deb/postrm",
        "packaging/deb-mariadb/postinst",
        "packaging/deb-mariadb/postrm",
        "tests/cross-build.sh",
    ];
    let output = Command::new("shellcheck")
        .current_dir(repo)
        .args(scripts)
        .output()
        .expect("shellcheck is missing: install it with `apt-get install shellcheck` (tests/run.sh does)");
    assert!(
        output.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_package_installs_upgrades_keeping_the_config_and_purges_on_a_throwaway_copy_of_this_machine() {
    let deb = amd64_package();
    let host_state = || {
        let user = Command::new("getent").args(["passwd", "facereko"]).output().unwrap().stdout;
        let package = Command::new("dpkg-query").args(["-W", "facereko"]).output().unwrap().stdout;
        (user, package, Path::new("/etc/facereko").exists(), Path::new("/usr/bin/facereko").exists())
    };
    let host_before = host_state();
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path();
    let script = r#"
set -euo pipefail
# dpkg looks for its helpers (ldconfig, start-stop-daemon) on the PATH.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$O/layer"
mount -t tmpfs tmpfs "$O/layer"
mkdir -p "$O/layer/upper" "$O/layer/work" "$O/layer/merged" "$O/layer/next"
mount -t overlay overlay -o "lowerdir=/,upperdir=$O/layer/upper,workdir=$O/layer/work" "$O/layer/merged"
M="$O/layer/merged"
for fs in proc sys dev; do mount --rbind "/$fs" "$M/$fs"; done
mkdir -p "$M/opt/models"
cp -r "$MODELS/." "$M/opt/models/"
cp "$DEB" "$M/opt/facereko.deb"
# The next version: the same package as revision 99, whose config gained a line.
dpkg-deb --raw-extract "$DEB" "$O/layer/next"
sed -i 's/^Version: \(.*\)-[0-9]*$/Version: \1-99/' "$O/layer/next/DEBIAN/control"
printf '\n# a setting of the next version\n' >>"$O/layer/next/etc/facereko/config.toml"
dpkg-deb --root-owner-group -Zgzip -z1 --build "$O/layer/next" "$M/opt/facereko-next.deb" >/dev/null

# Inside the copy with a clean environment: the test's own FACEREKO_* settings stay out.
inside() { env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 chroot "$M" "$@"; }
run() { local name="$1"; shift; "$@" >"$O/$name.txt" 2>&1; }
run install inside dpkg --install /opt/facereko.deb
run groups inside id -nG facereko
inside getent passwd facereko >"$O/passwd.txt"
inside stat -c '%n %U:%G %a' /etc/facereko /etc/facereko/config.toml /var/lib/facereko \
    /var/lib/facereko/models /usr/bin/facereko /lib/systemd/system/facereko.service >"$O/owners.txt"
systemctl --root="$M" is-enabled facereko.service >"$O/enabled.txt" 2>&1 || true
run fetch inside facereko models fetch --from /opt/models
run check inside facereko config check
run man inside sh -c 'ls /usr/share/man/man1/facereko.1.gz /usr/share/man/man1/facereko-models-fetch.1.gz \
    /usr/share/bash-completion/completions/facereko /usr/share/zsh/vendor-completions/_facereko'

# The owner's edit: a door of their own.
sed -i 's/^id = "front"$/id = "back-door"/' "$M/etc/facereko/config.toml"
cp "$M/etc/facereko/config.toml" "$O/edited.toml"
# --force-confold, as an unattended upgrade answers dpkg's question about a changed conffile.
run upgrade inside dpkg --force-confold --install /opt/facereko-next.deb
cp "$M/etc/facereko/config.toml" "$O/after-upgrade.toml"
ls "$M/etc/facereko" >"$O/etc-after-upgrade.txt"
inside dpkg-query -W -f='${Version}' facereko >"$O/version.txt"

run remove inside dpkg --remove facereko
ls -A "$M/var/lib/facereko" >"$O/data-after-remove.txt"
ls -A "$M/etc/facereko" >"$O/etc-after-remove.txt"
run purge inside dpkg --purge facereko
for path in /etc/facereko /var/lib/facereko /usr/bin/facereko /lib/systemd/system/facereko.service \
    /etc/systemd/system/multi-user.target.wants/facereko.service /etc/systemd/system/facereko.service; do
    if [ -e "$M$path" ] || [ -L "$M$path" ]; then echo "$path"; fi
done >"$O/left.txt"
inside dpkg-query -W -f='${db:Status-Abbrev}' facereko >"$O/status.txt" 2>&1 || true
"#;
    let status = Command::new("unshare")
        .args(["--mount", "bash", "-c", script])
        .env("O", o)
        .env("DEB", &deb)
        .env("MODELS", common::models_dir())
        .status()
        .expect("unshare (util-linux) runs");
    let read = |name: &str| std::fs::read_to_string(o.join(name)).unwrap_or_default();
    let all = || {
        ["install", "fetch", "check", "upgrade", "remove", "purge"]
            .map(|step| format!("--- {step}:\n{}", read(&format!("{step}.txt"))))
            .join("\n")
    };
    assert!(
        status.success(),
        "the package's install, upgrade or purge failed (it needs root, as dpkg does):\n{}",
        all()
    );

    // Installed: the user and its groups, the files with their owners and modes, the unit enabled.
    let install = read("install.txt");
    assert!(install.contains("Setting up facereko ("), "{install}");
    // The models are not there yet: enabled, not started, and told why and what to do.
    assert!(install.contains("facereko: the service is enabled but not started"), "{install}");
    assert!(install.contains("sudo facereko models fetch"), "{install}");
    assert_eq!(read("passwd.txt").split(':').skip(5).collect::<Vec<_>>(), ["/var/lib/facereko", "/usr/sbin/nologin\n"]);
    let groups = read("groups.txt");
    for group in ["facereko", "gpio", "spi", "video", "audio"] {
        assert!(groups.split_whitespace().any(|g| g == group), "facereko is not in {group}: {groups}");
    }
    assert_eq!(
        read("owners.txt"),
        "/etc/facereko root:facereko 750\n/etc/facereko/config.toml root:facereko 640\n\
         /var/lib/facereko facereko:facereko 750\n/var/lib/facereko/models root:root 755\n\
         /usr/bin/facereko root:root 755\n/lib/systemd/system/facereko.service root:root 644\n"
    );
    assert_eq!(read("enabled.txt"), "enabled\n", "systemctl --root is-enabled");
    assert_eq!(read("man.txt").lines().count(), 4, "manual pages and completions: {}", read("man.txt"));

    // Offline models, then the installed config passes its check with the simulated hardware.
    assert!(read("fetch.txt").contains("from /opt/models"), "{}", read("fetch.txt"));
    let check = read("check.txt");
    assert!(check.contains("config file: /etc/facereko/config.toml") && check.contains("configuration OK"), "{check}");
    assert!(check.contains("web app: https://0.0.0.0:8080/"), "the installed config serves HTTPS: {check}");

    // Upgraded: the owner's config is kept, the new version's is put beside it.
    assert_eq!(read("version.txt"), format!("{}-99", env!("CARGO_PKG_VERSION")));
    assert!(read("edited.toml").contains("\nid = \"back-door\"\n"), "{}", read("edited.toml"));
    assert_eq!(read("after-upgrade.toml"), read("edited.toml"), "the upgrade replaced the edited config");
    assert!(read("etc-after-upgrade.txt").contains("config.toml.dpkg-dist"), "{}", read("etc-after-upgrade.txt"));
    assert!(!read("upgrade.txt").contains("not started"), "the models are there now:\n{}", read("upgrade.txt"));

    // Removed: the data and the settings stay. Purged: nothing of the package is left.
    assert!(read("data-after-remove.txt").contains("models"), "{}", read("data-after-remove.txt"));
    assert!(read("etc-after-remove.txt").contains("config.toml"), "{}", read("etc-after-remove.txt"));
    assert_eq!(read("left.txt"), "", "left after the purge");
    assert!(!read("status.txt").starts_with("ii") && !read("status.txt").starts_with("rc"), "{}", read("status.txt"));

    assert_eq!(host_state(), host_before, "the throw-away install leaked onto this machine");
}
