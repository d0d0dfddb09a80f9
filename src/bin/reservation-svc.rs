//! `reservation-svc`: the split's reservation side and the client's one address (users,
//! catalog, reservations, the payment sagas) with its own database. Settings come from the
//! environment (README.md, "The split").

use clap::Parser;
use concert_outbox::split::reservation::{ReservationService, ReservationSettings};
use concert_outbox::split::runtime::service_main;
use std::process::ExitCode;

/// The split's reservation service: the whole API, orchestrating payments with payment-svc.
#[derive(Parser)]
#[command(name = "reservation-svc", version)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    // Anything given is refused with usage, not ignored.
    let _: Cli = Cli::parse();
    let settings = ReservationSettings::from_lookup(|name| std::env::var(name).ok());
    service_main("reservation-svc", settings, |settings| async {
        ReservationService::build(settings)
            .await?
            .run_until_stopped()
            .await?;
        Ok(())
    })
    .await
}
