//! `fer-predict`: score photos per face (batch to stdout) or `fer-predict serve` (HTTP).
//! See the library's crate documentation for inputs, outputs and options.

mod cli;

use clap::{Parser, Subcommand};
use cli::{BatchArgs, ServeArgs, batch, serve};

// mimalloc, as the other CNN binaries; unlike the training binaries, fer-predict does not
// tell it to keep freed memory (fer_ops::alloc::keep_freed_memory): the service must give a
// burst's memory back, and mimalloc's default returns freed pages after 10 ms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fer-predict",
    version,
    about = "Score photos: per face, p(happy) and a label (CSV or JSON lines on stdout)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    batch: BatchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP service: POST /predict (image body), GET /health.
    Serve(ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Some(Command::Serve(a)) => serve(a),
        None => batch(&cli.batch),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
