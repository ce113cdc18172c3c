//! `facereko serve-api` and `facereko serve-web`: a server alone in the foreground. `facereko run`
//! serves both beside the door when `api.listen` and `web.listen` are set.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::config::{Config, Section};

use super::{Cli, ServeApiArgs, ServeWebArgs};

/// The configuration with `<key>=<listen>` when `--listen` was given, checked for `sections`.
fn config_listening(cli: &Cli, key: &str, listen: Option<&str>, sections: &[Section]) -> Result<Config> {
    let mut sources = cli.sources();
    if let Some(listen) = listen {
        sources.overrides.push(format!("{key}={listen}"));
    }
    Ok(cli.load_config_from(sources, sections)?.config)
}

pub async fn serve(cli: &Cli, args: &ServeApiArgs) -> Result<ExitCode> {
    let sections = &[Section::DataDir, Section::Engine, Section::Api];
    let config = config_listening(cli, "api.listen", args.listen.as_deref(), sections)?;
    if !config.api.enabled() {
        bail!("the API has no address: set api.listen (e.g. \"127.0.0.1:8787\") or pass --listen");
    }
    facereko::app::serve_api(&config, super::shutdown_signal()).await.context("the API failed")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn serve_web(cli: &Cli, args: &ServeWebArgs) -> Result<ExitCode> {
    use Section::{DataDir, Database, Engine, Mqtt, Web};
    let config = config_listening(cli, "web.listen", args.listen.as_deref(), &[DataDir, Database, Web, Mqtt, Engine])?;
    if !config.web.enabled() {
        bail!("the web app has no address: set web.listen (e.g. \"0.0.0.0:8080\") or pass --listen");
    }
    facereko::app::serve_web(&config, super::shutdown_signal()).await.context("the web app failed")?;
    Ok(ExitCode::SUCCESS)
}
