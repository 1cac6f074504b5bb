use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dcs_task_operator::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            let message = format!("{error:#}");
            eprintln!(
                "error: {}",
                dcs_task_operator::text::strip_terminal_controls(&message)
            );
            ExitCode::from(cli::query::EXIT_INVALID_INPUT)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Query(args) => cli::query::run(args).await.context("query failed"),
        Command::Sim(args) => {
            cli::sim::run(args).await.context("simulator failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => {
            cli::controller::run(args)
                .await
                .context("controller failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", dcs_task_operator::api::crd_yaml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs go to stderr so that stdout carries only the command's output.
fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
