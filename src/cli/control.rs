//! Commands that talk to the running daemon over its control socket.

use std::process::ExitCode;

use anyhow::{Result, bail};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::control::{self, ControlError, Request, Response};
use facereko::door::Mode;
use facereko::driver::Status;
use facereko::hw::Lock;

async fn ask(config: &Config, request: &Request) -> Result<Status, ControlError> {
    match control::request(&config.control_socket(), request).await? {
        Response::Ok { status } => Ok(*status),
        Response::Error { message } => Err(ControlError::Protocol(message)),
    }
}

fn describe(status: &Status) -> String {
    format!(
        "door {}: {}, {}{}{}",
        status.door,
        if status.armed { "armed" } else { "disarmed" },
        if status.lock == Lock::Unlocked { "unlocked" } else { "locked" },
        if status.busy { ", attempt under way" } else { "" },
        if status.mode == Mode::CardOnly { ", CARD-ONLY mode (no face needed; door.mode)" } else { "" }
    )
}

pub async fn tap(config: &Config, card: &CardUid) -> Result<ExitCode> {
    ask(config, &Request::Tap { card: card.clone() }).await?;
    println!("tapped {card}; `facereko log -n 1` shows the result");
    Ok(ExitCode::SUCCESS)
}

pub async fn ring(config: &Config) -> Result<ExitCode> {
    ask(config, &Request::Ring).await?;
    println!("rang the bell; the owner is told and the Visitors page shows the visit");
    Ok(ExitCode::SUCCESS)
}

pub async fn set_armed(config: &Config, armed: bool) -> Result<ExitCode> {
    let request = if armed { Request::Arm } else { Request::Disarm };
    match ask(config, &request).await {
        Ok(status) => println!("{}", describe(&status)),
        Err(ControlError::NotRunning { .. }) => {
            // Nothing to tell a running door: record it for the next start.
            let store = facereko::store::open(&config.database, &config.data_dir).await?;
            store.door().set_armed(armed).await?;
            println!("facereko is not running; it will start {}", if armed { "armed" } else { "disarmed" });
        }
        Err(e) => bail!(e),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(config: &Config, json: bool) -> Result<ExitCode> {
    let status = ask(config, &Request::Status).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        println!("{}", describe(&status));
        println!(
            "engine {}, reader {}, camera {}, speaker {}",
            status.engine, status.reader, status.camera, status.speaker
        );
        let devices = [
            ("card reader", &status.reader_error),
            ("camera", &status.camera_error),
            ("speaker", &status.speaker_error),
        ];
        if status.clock_synchronised == Some(false) {
            println!("the clock is not synchronised: people and cards with time limits are refused (clock_not_synced)");
        }
        for (device, error) in devices {
            if let Some(error) = error {
                println!("the {device} is failing: {error}");
            }
        }
        match status.outbox_backlog {
            Some(n) => println!("notifications waiting: {n}"),
            None => println!("notifications waiting: unknown (the database did not answer)"),
        }
        for (channel, counts) in &status.messages {
            let problem = counts.last_problem.as_deref().map(|p| format!(" (last problem: {p})")).unwrap_or_default();
            println!(
                "{channel}: {} waiting, {} failed, {} delivered{problem}",
                counts.waiting, counts.failed, counts.delivered
            );
        }
        println!("facereko {}", status.version);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn healthcheck(config: &Config) -> Result<ExitCode> {
    match ask(config, &Request::Status).await {
        Ok(status) => {
            println!("ok: {}", describe(&status));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
