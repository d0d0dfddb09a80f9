//! The reservation API. `concert-api migrate` applies migrations and exits.

use clap::{Parser, Subcommand};
use concert_outbox::config::{ApiConfig, ConfigError};
use concert_outbox::db;
use concert_outbox::error::cause_chain;
use concert_outbox::startup::Application;
use std::process::ExitCode;

/// The reservation API and its pages. Settings come from the environment (see README.md).
#[derive(Parser)]
#[command(name = "concert-api", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply the pending migrations to DATABASE_URL and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Unknown commands and flags are refused here, with usage, before anything starts.
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match ApiConfig::from_env() {
            Ok(config) => serve(config).await,
            Err(error) => return configuration_error(error),
        },
        Command::Migrate => match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => migrate(&url),
            _ => {
                return configuration_error(ConfigError {
                    name: "DATABASE_URL",
                    reason: "is required but not set".into(),
                })
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("concert-api: {}", cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn configuration_error(error: ConfigError) -> ExitCode {
    eprintln!("concert-api: configuration error: {error}");
    ExitCode::from(2)
}

type AnyError = Box<dyn std::error::Error>;

async fn serve(config: ApiConfig) -> Result<(), AnyError> {
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    log::info!("concert-api stopped");
    Ok(())
}

fn migrate(database_url: &str) -> Result<(), AnyError> {
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(database_url)?;
    let applied = db::run_migrations(&mut conn)?;
    println!(
        "applied {} migration(s): {}",
        applied.len(),
        applied.join(", ")
    );
    Ok(())
}
