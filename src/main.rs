//! The `seismo` binary: parses the command line and hands over to the library.

use clap::Parser;

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
