//! `facereko serve-api`: the Rekognition-compatible face API in the foreground. `facereko run`
//! serves it beside the door when `api.listen` is set.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::config::Section;

use super::{Cli, ServeApiArgs};

pub async fn serve(cli: &Cli, args: &ServeApiArgs) -> Result<ExitCode> {
    let mut sources = cli.sources();
    if let Some(listen) = &args.listen {
        sources.overrides.push(format!("api.listen={listen}"));
    }
    let config = cli.load_config_from(sources, &[Section::DataDir, Section::Engine, Section::Api])?.config;
    if !config.api.enabled() {
        bail!("the API has no address: set api.listen (e.g. \"127.0.0.1:8787\") or pass --listen");
    }
    facereko::app::serve_api(&config, super::shutdown_signal()).await.context("the API failed")?;
    Ok(ExitCode::SUCCESS)
}
