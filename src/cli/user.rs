//! `facereko user`: login accounts of the web app.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facereko::accounts::{self, Role};
use facereko::config::Config;

use super::UserCommand;

/// The first line of a file holding a secret.
pub fn read_secret_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the password file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Turns terminal echo off while it lives, so a typed password is not shown.
struct NoEcho {
    saved: libc::termios,
}

impl NoEcho {
    fn start() -> Option<Self> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own; failure leaves echo as it was.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) == 0).then_some(Self { saved })
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `start`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

fn prompt_hidden(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let line = {
        let _quiet = NoEcho::start();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The new password: from `file`, typed twice at a terminal, or the first line piped in.
fn new_password(file: Option<&Path>) -> Result<String> {
    let password = match file {
        Some(path) => read_secret_file(path)?,
        None if std::io::stdin().is_terminal() => {
            let first = prompt_hidden("new password: ")?;
            if prompt_hidden("the same again: ")? != first {
                bail!("the two passwords differ; nothing was changed");
            }
            first
        }
        None => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    accounts::check_new_password(&password)?;
    Ok(password)
}

async fn hash(password: String) -> Result<String> {
    Ok(tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await??)
}

pub async fn user(config: &Config, command: &UserCommand) -> Result<ExitCode> {
    let store = super::admin::open_store(config).await?;
    match command {
        UserCommand::Add { name, role, password_file } => {
            let name = accounts::clean_username(name)?;
            let role: Role = role.parse()?;
            let password = new_password(password_file.as_deref())?;
            store.accounts().add_user(name, &hash(password).await?, role.as_str()).await?;
            println!("added {role} {name}; they can sign in to the web app now");
        }
        UserCommand::List { json } => {
            let users = store.accounts().list_users().await?;
            if *json {
                println!("{}", serde_json::to_string(&users)?);
            } else if users.is_empty() {
                println!("no accounts yet: `facereko user add NAME` adds an admin");
            } else {
                for user in users {
                    println!("{:<24} {}", user.username, user.role);
                }
            }
        }
        UserCommand::Remove { name } => {
            store.accounts().remove_user(name).await?;
            println!("removed {name}; a web session they still have ends at their next click");
        }
        UserCommand::Passwd { name, password_file } => {
            let password = new_password(password_file.as_deref())?;
            store.accounts().set_password_hash(name, &hash(password).await?).await?;
            println!("changed the password of {name}; their web sessions have ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}
