//! The Rekognition-compatible face API: `facereko serve-api` in the foreground, or beside the
//! door in `facereko run` when `api.listen` is set.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::api::{self, ApiState};
use facereko::config::Config;
use facereko::engine::local::LocalEngine;
use tokio::net::TcpListener;

use super::{Cli, ServeApiArgs};

/// Loads the engine, opens the collections and binds `api.listen`.
async fn prepare(config: &Config) -> Result<(TcpListener, ApiState)> {
    let engine = LocalEngine::load(&config.engine.models_dir).context("cannot start the on-device face engine")?;
    let state = ApiState::open(&config.api, engine, &config.data_dir).context("cannot open the API's collections")?;
    let address = config.api.listen.trim();
    let listener = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(address = %listener.local_addr()?, region = %config.api.region, "Rekognition-compatible API listening");
    Ok((listener, state))
}

pub async fn serve(cli: &Cli, args: &ServeApiArgs) -> Result<ExitCode> {
    let mut sources = cli.sources();
    if let Some(listen) = &args.listen {
        sources.overrides.push(format!("api.listen={listen}"));
    }
    let config = cli.load_config_from(sources)?.config;
    if !config.api.enabled() {
        bail!("the API has no address: set api.listen (e.g. \"127.0.0.1:8787\") or pass --listen");
    }
    let (listener, state) = prepare(&config).await?;
    api::serve(listener, state, super::shutdown_signal()).await.context("the API server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// The API served beside the door daemon.
pub struct BesideDaemon {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the API when `api.listen` is set.
pub async fn start_beside_daemon(config: &Config) -> Result<Option<BesideDaemon>> {
    if !config.api.enabled() {
        return Ok(None);
    }
    let (listener, state) = prepare(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok(Some(BesideDaemon { stop, task }))
}

impl BesideDaemon {
    /// Lets requests in flight finish, then stops.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the API task failed")?.context("the API server failed")
    }
}
