mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The daemon logs what it does to stdout for journald; one-shot commands keep stdout for
    // their output and only speak up on stderr when something is wrong.
    let daemon = matches!(cli.command, cli::Command::Run | cli::Command::Demo(_) | cli::Command::ServeApi(_));
    if !daemon {
        // A one-shot command piped into `head` or `grep -q` ends quietly when the reader goes
        // away, as Unix tools do, instead of panicking on the closed pipe. The daemon keeps Rust's
        // default of ignoring SIGPIPE so that a control-socket client leaving cannot kill it.
        // SAFETY: called before any thread exists; SIG_DFL is a valid disposition for SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    facereko::engine::local::keep_freed_memory();
    let (default_level, writer, ansi) = if daemon {
        ("info", BoxMakeWriter::new(std::io::stdout), std::io::stdout().is_terminal())
    } else {
        ("warn", BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal())
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with_writer(writer)
        .with_ansi(ansi)
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
