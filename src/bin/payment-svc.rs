//! `payment-svc`: the split's payment side (balances, ledger, payments) with its own database.
//! Settings come from the environment (README.md, "The split").

use clap::Parser;
use concert_outbox::split::payment::{self, PaymentService};
use concert_outbox::split::runtime::service_main;
use std::process::ExitCode;

/// The split's payment service: answers reservation-svc's commands and point calls.
#[derive(Parser)]
#[command(name = "payment-svc", version)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    // Anything given is refused with usage, not ignored.
    let _: Cli = Cli::parse();
    let settings = payment::settings_from(|name| std::env::var(name).ok());
    service_main("payment-svc", settings, |settings| async {
        PaymentService::build(settings)
            .await?
            .run_until_stopped()
            .await?;
        Ok(())
    })
    .await
}
