//! The `seismo` binary: parses the command line and hands over to the library.

use clap::Parser;

/// Ingestion allocates many small, short-lived values (parsed JSON); glibc's allocator
/// spent a fifth of the CPU on them under load, mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = seismo::cli::Cli::parse();
    match seismo::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seismo: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
