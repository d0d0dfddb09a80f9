//! `payment-svc`: the split's payment side (balances, ledger, payments) with its own database.
//! Settings come from the environment (README.md, "The split").

use clap::Parser;
use concert_outbox::error::cause_chain;
use concert_outbox::split::payment::{self, PaymentService};
use std::process::ExitCode;

/// The split's payment service: answers reservation-svc's commands and point calls.
#[derive(Parser)]
#[command(name = "payment-svc", version)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    // Anything given is refused with usage, not ignored.
    let _: Cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match payment::settings_from(|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("payment-svc: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let served = async {
        PaymentService::build(settings)
            .await?
            .run_until_stopped()
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    match served.await {
        Ok(()) => {
            log::info!("payment-svc stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("payment-svc: {}", cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
