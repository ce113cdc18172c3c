//! The control socket: a Unix socket speaking one JSON object per line, through which the CLI
//! taps simulated cards, presses the simulated doorbell, arms and disarms the door and reads its
//! status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::card::CardUid;
use crate::checks::Checks;
use crate::driver::{Command, ControlHandle, Status};
use crate::serving::{self, Limits, Slot};

/// `[control]`: the socket the CLI talks to the daemon through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlConfig {
    /// Unix socket for `facereko tap|ring|arm|disarm|status|healthcheck`; default `<data_dir>/control.sock`.
    pub socket: Option<PathBuf>,
    /// `[control.connections]`: the cap on open connections and how long one may wait to ask.
    pub connections: Limits,
}

impl Default for ControlConfig {
    fn default() -> Self {
        // One short exchange per command: a few at a time is plenty.
        Self { socket: None, connections: Limits { max: 32, ..Limits::default() } }
    }
}

impl ControlConfig {
    pub fn socket_path(&self, data_dir: &Path) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| data_dir.join("control.sock"))
    }

    pub fn check(&self, data_dir: &Path, checks: &mut Checks) {
        self.connections.check("control", checks);
        let socket = self.socket_path(data_dir);
        // sun_path holds 108 bytes including the terminating NUL.
        let socket_len = socket.as_os_str().len();
        checks.check(
            (1..=107).contains(&socket_len),
            "control.socket",
            format!("{socket:?} is {socket_len} bytes; a Unix socket path needs 1 to 107: choose a shorter path"),
        );
        if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
            checks.check(
                parent.is_dir(),
                "control.socket",
                format!("the folder {} does not exist; create it or choose another path", parent.display()),
            );
        }
    }
}

/// Requests longer than this are refused: nothing we accept comes close.
const MAX_REQUEST_BYTES: u64 = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Tap {
        card: CardUid,
    },
    /// A press of the simulated doorbell.
    Ring,
    Arm,
    Disarm,
    Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok { status: Box<Status> },
    Error { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("facereko is not running: nothing answers on {path} ({detail})")]
    NotRunning { path: String, detail: String },
    #[error("another facereko is already running: {path} answers")]
    AlreadyRunning { path: String },
    #[error("cannot listen on {path}: {detail}")]
    Listen { path: String, detail: String },
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    #[error("bad answer from the daemon: {0}")]
    Protocol(String),
}

/// Binds the socket, refusing to steal it from a daemon that is still answering.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let shown = path.display().to_string();
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::AlreadyRunning { path: shown });
        }
        // Left behind by a daemon that was killed.
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|e| ControlError::Listen { path: shown.clone(), detail: e.to_string() })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| ControlError::Listen { path: shown, detail: e.to_string() })?;
    Ok(listener)
}

/// Serves connections within `limits` until the task is dropped.
pub async fn serve(listener: UnixListener, handle: ControlHandle, limits: Limits) {
    let header_timeout = limits.header_timeout;
    serving::accept_loop("control socket", listener, limits, std::future::pending(), move |stream, _, slot| {
        serve_connection(stream, handle.clone(), slot, header_timeout)
    })
    .await;
}

async fn serve_connection(stream: UnixStream, handle: ControlHandle, slot: Slot, header_timeout: Duration) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let activity = slot.activity();
    loop {
        line.clear();
        // One byte more than allowed tells an oversized request from one that just fits.
        let mut limited = (&mut reader).take(MAX_REQUEST_BYTES + 1);
        let next = limited.read_until(b'\n', &mut line);
        tokio::select! {
            read = tokio::time::timeout(header_timeout, next) => match read {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            },
            _ = slot.closing() => return,
        }
        let _working = activity.start();
        let oversized = line.len() as u64 > MAX_REQUEST_BYTES;
        let response = if oversized {
            Response::Error { message: format!("the request is longer than {MAX_REQUEST_BYTES} bytes") }
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => answer(request, &handle).await,
                Err(e) => Response::Error { message: format!("not a valid request: {e}") },
            }
        };
        let mut text = serde_json::to_string(&response).expect("responses serialise");
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() || oversized {
            return;
        }
    }
}

async fn answer(request: Request, handle: &ControlHandle) -> Response {
    match request {
        Request::Tap { card } => {
            let Some(taps) = &handle.taps else {
                return Response::Error {
                    message: "the card reader is not simulated (hardware.reader); tap a real card".into(),
                };
            };
            if let Err(e) = taps.tap(card).await {
                return Response::Error { message: e.to_string() };
            }
        }
        Request::Ring => {
            let Some(presses) = &handle.presses else {
                return Response::Error {
                    message: "the doorbell is not simulated (hardware.bell); press the real button".into(),
                };
            };
            if let Err(e) = presses.press().await {
                return Response::Error { message: e.to_string() };
            }
        }
        Request::Arm | Request::Disarm => {
            let armed = request == Request::Arm;
            if let Err(e) = handle.command(|done| Command::SetArmed { armed, done }).await {
                return Response::Error { message: e.to_string() };
            }
        }
        Request::Status => {}
    }
    Response::Ok { status: Box::new(handle.current_status().await) }
}

/// Sends one request to the daemon at `path` and waits for its answer.
pub async fn request(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let exchange = async {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| ControlError::NotRunning { path: path.display().to_string(), detail: e.to_string() })?;
        let (read, mut write) = stream.into_split();
        let mut text = serde_json::to_string(request).expect("requests serialise");
        text.push('\n');
        write.write_all(text.as_bytes()).await.map_err(|e| ControlError::Protocol(e.to_string()))?;
        let line = BufReader::new(read)
            .lines()
            .next_line()
            .await
            .map_err(|e| ControlError::Protocol(e.to_string()))?
            .ok_or_else(|| ControlError::Protocol("the daemon closed the connection".into()))?;
        serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange).await.map_err(|_| ControlError::Timeout(CLIENT_TIMEOUT))?
}

/// Removes the socket file when the daemon stops.
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
