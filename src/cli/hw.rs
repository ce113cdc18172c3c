//! Hardware tools: try the outputs, take a picture, read cards — with the daemon stopped.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use facereko::config::Config;
use facereko::control::{self, Request};
use facereko::hw::{Lights, Lock, simulated};
use facereko::hw::{camera_from_config, outputs_from_config, reader_from_config, speaker_from_config};

/// Two processes must never drive the same pins or SPI bus.
async fn refuse_if_daemon_runs(config: &Config) -> Result<()> {
    if control::request(&config.control_socket(), &Request::Status).await.is_ok() {
        bail!("the door daemon is running and owns the hardware: stop it first (sudo systemctl stop facereko)");
    }
    Ok(())
}

pub async fn test_outputs(config: &Config) -> Result<ExitCode> {
    refuse_if_daemon_runs(config).await?;
    let (mut leds, mut buzzer, mut relay) = outputs_from_config(&config.hardware)?;
    let steps = async {
        println!("red LED on for 1 s");
        leds.set(Lights { red: true, green: false })?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("green LED on for 1 s");
        leds.set(Lights { red: false, green: true })?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("buzzer on for 0.3 s");
        buzzer.set(true)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        buzzer.set(false)?;
        println!("lock relay energised for 1 s (the door unlocks)");
        relay.set(Lock::Unlocked)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        relay.set(Lock::Locked)?;
        leds.set(Lights::SAFE)?;
        Ok::<_, facereko::hw::HwError>(())
    };
    tokio::select! {
        done = steps => done?,
        _ = tokio::signal::ctrl_c() => println!("interrupted"),
    }
    // Dropping the outputs leaves them safe, also after an interruption.
    println!("done: locked, red on");
    Ok(ExitCode::SUCCESS)
}

pub async fn snapshot(config: &Config, file: &Path) -> Result<ExitCode> {
    refuse_if_daemon_runs(config).await?;
    let camera = camera_from_config(&config.hardware)?;
    let frame = camera.frame().await.context("the camera gave no picture")?;
    std::fs::write(file, frame.bytes()).with_context(|| format!("cannot write {}", file.display()))?;
    let size = facereko::engine::decode_rgb(&frame, "the picture").map(|p| format!(" {}×{}", p.width(), p.height()));
    println!(
        "saved a{} {:?} picture ({} bytes) to {}",
        size.unwrap_or_default(),
        frame.format(),
        frame.bytes().len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `frames` frames one after the other into `dir`, as fast as the camera gives them (as the door's
/// burst takes them).
pub async fn snapshot_burst(config: &Config, dir: &Path, frames: u8) -> Result<ExitCode> {
    refuse_if_daemon_runs(config).await?;
    let camera = camera_from_config(&config.hardware)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let started = std::time::Instant::now();
    for i in 0..frames {
        let frame = camera.frame().await.context("the camera gave no picture")?;
        let file = dir.join(format!("frame-{i:02}.{}", frame.format().extension()));
        std::fs::write(&file, frame.bytes()).with_context(|| format!("cannot write {}", file.display()))?;
    }
    println!("saved {frames} frames in {:.2} s to {}", started.elapsed().as_secs_f64(), dir.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn read_card(config: &Config) -> Result<ExitCode> {
    if config.hardware.reader == simulated::NAME {
        bail!(
            "hardware.reader is \"simulated\": its taps come from `facereko tap` to a running daemon; \
             set hardware.reader to a real reader to read cards"
        );
    }
    refuse_if_daemon_runs(config).await?;
    let (mut reader, _) = reader_from_config(&config.hardware)?;
    if let Some(why) = reader.trouble().now() {
        bail!("the card reader {why}");
    }
    println!("tap a card (Ctrl-C stops)");
    let time_format = time::macros::format_description!("[hour]:[minute]:[second]");
    loop {
        tokio::select! {
            uid = reader.next_uid() => {
                let now = time::OffsetDateTime::now_utc().format(time_format).unwrap_or_default();
                println!("{now}  {}", uid?);
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub async fn say(config: &Config, text: &str) -> Result<ExitCode> {
    refuse_if_daemon_runs(config).await?;
    let mut speaker = speaker_from_config(&config.hardware)?;
    let (text, voice) = (text.to_owned(), config.voice.clone());
    let said = tokio::task::spawn_blocking(move || -> Result<String> {
        let started = std::time::Instant::now();
        let pcm = speaker.render(&text, &voice.spec())?;
        let rendered = started.elapsed();
        let pcm = pcm.with_volume(voice.volume).with_leading_silence(facereko::voice::LEADING_SILENCE);
        let mut clip = tempfile::Builder::new().suffix(".wav").tempfile()?;
        std::io::Write::write_all(&mut clip, &pcm.to_wav())?;
        speaker.play(clip.path(), &text)?;
        let outcome = loop {
            if let Some(outcome) = speaker.finished() {
                break outcome;
            }
            std::thread::sleep(Duration::from_millis(20));
            if started.elapsed() > pcm.duration() + Duration::from_secs(10) {
                speaker.stop();
                bail!("the speaker did not finish playing");
            }
        };
        outcome?;
        Ok(format!(
            "said {text:?} with {} ({} of sound, rendered in {} ms)",
            speaker.renderer(),
            humantime::format_duration(Duration::from_millis(pcm.duration().as_millis() as u64)),
            rendered.as_millis()
        ))
    })
    .await
    .context("the speaker task panicked")??;
    println!("{said}");
    Ok(ExitCode::SUCCESS)
}
