//! `facereko voice`: the neural voice.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use facereko::hw::piper;

use super::Cli;

/// `facereko voice fetch [--dir DIR]`: the config is read only when no `--dir` is given.
pub async fn fetch(cli: &Cli, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let loaded = cli
                .load_config(&[])
                .context("hardware.espeak.neural_voice comes from the configuration; fix it or pass --dir")?;
            loaded.config.hardware.espeak.neural_voice
        }
    };
    let shown = dir.display().to_string();
    let fetched = tokio::task::spawn_blocking(move || piper::fetch(&dir, |step| println!("{step}")))
        .await
        .context("the fetch task panicked")?
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("cannot install the neural voice into {shown}"))?;
    println!(
        "the neural voice {} is installed in {shown} ({} MB); loading it and rendering a {:.1} s test phrase took {} ms",
        fetched.voice.name,
        fetched.size / 1_000_000,
        fetched.test_phrase.duration().as_secs_f64(),
        fetched.first_render.as_millis()
    );
    println!("the `espeak` speaker renders the phrases with it from the next start of the daemon");
    Ok(ExitCode::SUCCESS)
}
