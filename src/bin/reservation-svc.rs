//! `reservation-svc`: the split's reservation side and the client's one address (users,
//! catalog, reservations, the payment sagas) with its own database. Settings come from the
//! environment (README.md, "The split").

use clap::Parser;
use concert_outbox::error::cause_chain;
use concert_outbox::split::reservation::{ReservationService, ReservationSettings};
use std::process::ExitCode;

/// The split's reservation service: the whole API, orchestrating payments with payment-svc.
#[derive(Parser)]
#[command(name = "reservation-svc", version)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    // Anything given is refused with usage, not ignored.
    let _: Cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match ReservationSettings::from_lookup(|name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("reservation-svc: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let served = async {
        ReservationService::build(settings)
            .await?
            .run_until_stopped()
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    match served.await {
        Ok(()) => {
            log::info!("reservation-svc stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("reservation-svc: {}", cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
