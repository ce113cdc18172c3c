//! A MariaDB server for tests: the one `FACEREKO_TEST_MYSQL_URL` names (an account that may create
//! databases and users), else a throw-away `mariadbd` in a temporary folder, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Names the admin account of an existing server to test against instead of a throw-away one.
pub const URL_ENV: &str = "FACEREKO_TEST_MYSQL_URL";

const INSTALL_HINT: &str = "install MariaDB with `apt-get install mariadb-server` (it provides mariadbd and \
                            mariadb-install-db), or set FACEREKO_TEST_MYSQL_URL to an account that may create \
                            databases and users, e.g. mysql://root:password@127.0.0.1:3306/";

/// Where the admin SQL goes.
enum Admin {
    /// The throw-away server's socket, where root logs in without a password.
    Socket(PathBuf),
    /// An existing server: host, port, user, password.
    Tcp { host: String, port: u16, user: String, password: Option<String> },
}

pub struct MariaDb {
    /// Holds the data folder and socket of a throw-away server.
    dir: Option<tempfile::TempDir>,
    host: String,
    port: u16,
    admin: Admin,
    server: Option<Child>,
    /// Databases and users made on an existing server, dropped again with this value.
    made: std::sync::Mutex<Vec<(String, String)>>,
    /// How long the last start took until the server answered.
    pub started_in: Duration,
}

/// A database with its own user, as a URL with the password in it, and the parts of that URL.
pub struct TestDatabase {
    pub url: String,
    pub url_without_password: String,
    pub password: String,
    pub name: String,
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("{name} is not installed: {INSTALL_HINT}"))
}

/// A freshly installed data folder, copied for each server. It is made once and kept in the
/// target folder for the installed MariaDB version (`mariadb-install-db` takes seconds; a copy, milliseconds).
fn template_datadir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = Command::new(program("mariadbd")).arg("--version").output().expect("mariadbd runs").stdout;
        let version = String::from_utf8_lossy(&version).trim().to_owned();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mariadb-template");
        if std::fs::read_to_string(root.join("version")).is_ok_and(|v| v == version) {
            return root.join("data");
        }
        // Built beside and renamed into place, so a test binary running at the same time never sees half of it.
        let building =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mariadb-template.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        std::fs::create_dir_all(&building).expect("a folder for the MariaDB template");
        let log = std::fs::File::create(building.join("install.log")).expect("the install log");
        let status = Command::new(program("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", building.join("data").display()))
            .args(["--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg("--innodb-log-file-size=4M")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the install log"))
            .stderr(log)
            .status()
            .expect("mariadb-install-db runs");
        let output = std::fs::read_to_string(building.join("install.log")).unwrap_or_default();
        assert!(status.success(), "mariadb-install-db failed ({status}):\n{output}");
        std::fs::write(building.join("version"), &version).expect("the version file");
        let _ = std::fs::remove_dir_all(&root);
        if std::fs::rename(&building, &root).is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        root.join("data")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the data folder");
    for entry in std::fs::read_dir(from).expect("the template is readable") {
        let entry = entry.expect("a template entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("a template file copies");
        }
    }
}

impl MariaDb {
    /// The server named by `FACEREKO_TEST_MYSQL_URL`, else a throw-away one.
    pub fn start() -> Self {
        match std::env::var(URL_ENV) {
            Ok(url) if !url.is_empty() => Self::existing(&url),
            _ => Self::throw_away(),
        }
    }

    fn existing(url: &str) -> Self {
        let opts = mysql_async::Opts::from_url(url).unwrap_or_else(|e| panic!("{URL_ENV} is not a MySQL URL: {e}"));
        let admin = Admin::Tcp {
            host: opts.ip_or_hostname().to_owned(),
            port: opts.tcp_port(),
            user: opts.user().unwrap_or("root").to_owned(),
            password: opts.pass().map(str::to_owned),
        };
        Self {
            dir: None,
            host: opts.ip_or_hostname().to_owned(),
            port: opts.tcp_port(),
            admin,
            server: None,
            made: Default::default(),
            started_in: Duration::ZERO,
        }
    }

    /// A new server of our own, which tests may stop and start again.
    pub fn throw_away() -> Self {
        Self::throw_away_in(&std::env::temp_dir())
    }

    /// A new server of our own with its files in a new folder under `parent` (a small disk).
    pub fn throw_away_in(parent: &Path) -> Self {
        let dir = tempfile::tempdir_in(parent).expect("a folder for MariaDB");
        copy_dir(template_datadir(), &dir.path().join("data"));
        let mut server = Self {
            admin: Admin::Socket(dir.path().join("sock")),
            dir: Some(dir),
            host: "127.0.0.1".into(),
            port: super::free_port(),
            server: None,
            made: Default::default(),
            started_in: Duration::ZERO,
        };
        server.resume();
        server
    }

    fn folder(&self) -> &Path {
        self.dir.as_ref().expect("only a throw-away server can be stopped and started").path()
    }

    /// Starts the throw-away server again on the same data folder and port.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let dir = self.folder().to_owned();
        // A file, not a pipe: nobody reads the server's output while the test runs.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let started = Instant::now();
        let child = Command::new(program("mariadbd"))
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--performance-schema=OFF",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=4M",
                // Times read back do not depend on the machine's zone.
                "--default-time-zone=+00:00",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("mariadbd does not start: {e}; {INSTALL_HINT}"));
        self.server = Some(child);
        while !self.answers() {
            if let Some(status) = self.server.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("mariadbd exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "mariadbd did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        self.started_in = started.elapsed();
    }

    /// Kills the throw-away server at once, as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        let mut child = self.server.take().expect("the server is running");
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log(&self) -> String {
        self.dir.as_ref().and_then(|d| std::fs::read_to_string(d.path().join("server.log")).ok()).unwrap_or_default()
    }

    fn answers(&self) -> bool {
        self.client()
            .arg("-e")
            .arg("SELECT 1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn client(&self) -> Command {
        let mut command = Command::new(program("mariadb"));
        command.arg("--no-defaults").arg("--batch").arg("--skip-column-names");
        match &self.admin {
            Admin::Socket(socket) => {
                command.arg(format!("--socket={}", socket.display())).arg("--user=root");
            }
            Admin::Tcp { host, port, user, password } => {
                command.arg(format!("--host={host}")).arg(format!("--port={port}")).arg(format!("--user={user}"));
                if let Some(password) = password {
                    // MYSQL_PWD keeps the password off the command line.
                    command.env("MYSQL_PWD", password);
                }
            }
        }
        command.stdin(Stdio::null());
        command
    }

    /// Runs `sql` as the admin account (in `database` when given); returns the rows as text.
    pub fn sql(&self, database: Option<&str>, sql: &str) -> String {
        self.try_sql(database, sql).unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"))
    }

    /// Runs `sql` like [`MariaDb::sql`]; the error is the client's message.
    pub fn try_sql(&self, database: Option<&str>, sql: &str) -> Result<String, String> {
        let mut command = self.client();
        if let Some(database) = database {
            command.arg(format!("--database={database}"));
        }
        let output = command.arg("-e").arg(sql).output().expect("the mariadb client runs");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(String::from_utf8(output.stdout).expect("UTF-8 rows"))
    }

    /// The throw-away server's socket, where root logs in without a password.
    pub fn socket(&self) -> PathBuf {
        self.folder().join("sock")
    }

    /// Whether `user` logs in over the socket with `password` and sees `database`.
    pub fn logs_in(&self, user: &str, password: &str, database: &str) -> bool {
        let options = self.folder().join("client.cnf");
        // An options file keeps the password off the command line.
        std::fs::write(&options, format!("[client]\nuser={user}\npassword={password}\n")).unwrap();
        Command::new(program("mariadb"))
            .arg(format!("--defaults-file={}", options.display()))
            .arg(format!("--socket={}", self.socket().display()))
            .args(["--execute", "SELECT 1", database])
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// A new database with its own user and password, so that tests can share a server.
    pub fn database(&self) -> TestDatabase {
        let suffix = unique_suffix();
        let (name, user, password) = (format!("facereko_{suffix}"), format!("door_{suffix}"), format!("pw-{suffix}"));
        self.sql(
            None,
            &format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4;
                 CREATE USER '{user}'@'%' IDENTIFIED BY '{password}';
                 GRANT ALL ON {name}.* TO '{user}'@'%';"
            ),
        );
        self.made.lock().unwrap_or_else(|e| e.into_inner()).push((name.clone(), user.clone()));
        let (host, port) = (&self.host, self.port);
        TestDatabase {
            url: format!("mysql://{user}:{password}@{host}:{port}/{name}"),
            url_without_password: format!("mysql://{user}@{host}:{port}/{name}"),
            password,
            name,
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        } else if self.dir.is_none() {
            // Leave an existing server as it was found.
            let made = std::mem::take(&mut *self.made.lock().unwrap_or_else(|e| e.into_inner()));
            for (name, user) in made {
                // The test's own connections may still hold locks (a rollback waiting for a runtime
                // that is busy dropping this): end them first, or the DROP waits forever.
                let sessions = format!("SELECT id FROM information_schema.processlist WHERE user = '{user}'");
                for id in self.try_sql(None, &sessions).unwrap_or_default().lines() {
                    let _ = self.try_sql(None, &format!("KILL {id}"));
                }
                let _ =
                    self.try_sql(None, &format!("DROP DATABASE IF EXISTS {name}; DROP USER IF EXISTS '{user}'@'%';"));
            }
        }
    }
}
