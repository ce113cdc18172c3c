//! `facereko generate` (hidden): the manual pages and shell completions, made from the clap
//! definitions by the binary itself, so that they always match it. The Debian packages are built
//! with them (`packaging/deb.sh`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::{Cli, GenerateCommand};

pub fn generate(command: &GenerateCommand) -> Result<ExitCode> {
    match command {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
        GenerateCommand::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "facereko", &mut std::io::stdout().lock());
        }
    }
    Ok(ExitCode::SUCCESS)
}
