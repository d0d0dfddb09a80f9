//! `concert-bench`: measures the service on this machine, against baselines run in the same
//! process so the ratio, not the absolute number, carries the meaning on a noisy machine.
//!
//! ```text
//! concert-bench relay    --events 100000            # outbox drain (single / batched POSTs) vs the same HTTP
//!                                                   # work without a database; then commit-to-delivery
//!                                                   # latency with LISTEN/NOTIFY vs polling
//! concert-bench relay --destination jetstream       # drain into a JetStream stream (a private nats-server)
//!                                                   # vs the same publishing without a database; then
//!                                                   # commit-to-PubAck latency
//! concert-bench flows    --clients 64 --seconds 20  # hold + pay through the real concert-api vs the
//!                                                   # same SQL straight to Postgres
//! concert-bench flows --topology split              # the same purchases through the split (over HTTP,
//!                                                   # then JetStream) vs the monolith: flows/s and the
//!                                                   # time from the payment call to confirmed
//! concert-bench hot-seat --clients 1000 --seats 50  # everyone races for a few seats at once; exits
//!                                                   # non-zero unless exactly one hold per seat wins
//! concert-bench soak     --events 1000000           # a steady stream through the relay on a private
//!                                                   # PostgreSQL with autovacuum on: table sizes before,
//!                                                   # during and after
//! concert-bench queue    --users 10000             # everyone joins the waiting queue, polls until
//!                                                   # admitted and leaves, through concert-api vs the
//!                                                   # library's Queue straight to the same Redis; exits
//!                                                   # non-zero unless each user is admitted once and
//!                                                   # the active set stays within its limit
//! ```
//!
//! Every command creates its own database (`concert_bench_<random>`) on DATABASE_URL's server,
//! migrates it and drops it at the end; no other database is touched. `queue` uses REDIS_URL's
//! Redis (else the machine's on 6379, else a private one) under key prefixes of its own, which
//! it deletes at the end. `flows`, `hot-seat` and `queue` spawn `concert-api` (and `--topology
//! split` reservation-svc and payment-svc) from this executable's directory, so build them
//! first, from the workspace root:
//! `cargo build --release --bins && cargo build --release -p concert-bench`.
//! `--json` prints the report as JSON.

mod api_client;
mod api_process;
mod bench_db;
mod flows;
mod hot_seat;
mod http_baseline;
mod jetstream;
mod latency;
mod nats_server;
mod observe;
mod platform;
mod queue;
mod queue_line;
mod queue_phase;
mod queue_redis;
mod queue_report;
mod relay;
mod soak;
mod sql_baseline;
mod stats;
mod topologies;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type BenchResult<T> = Result<T, BenchError>;

#[derive(Parser)]
#[command(about = "Benchmarks concert-outbox against baselines on the same machine")]
struct Cli {
    /// The Postgres server to create the bench's databases on (any database there).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// Print the report as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Relay drain rate vs a no-database HTTP baseline, then commit-to-delivery latency.
    Relay(relay::RelayArgs),
    /// Hold + pay flows through concert-api vs the same SQL straight to Postgres; with
    /// `--topology split`, through the split vs the monolith.
    Flows(flows::FlowsArgs),
    /// Many clients racing for a few seats at the same instant.
    HotSeat(hot_seat::HotSeatArgs),
    /// A long steady stream of events through the relay on a private PostgreSQL with
    /// autovacuum on, and the outbox tables' sizes before, during and after.
    Soak(soak::SoakArgs),
    /// Users join the waiting queue, poll until admitted and leave, through concert-api vs
    /// the library's Queue straight to Redis.
    Queue(queue::QueueArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // The relay and the mock platform log at info per round; warnings are what matters here.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    // Ctrl-C drops the running command, whose guards drop the database and stop the API.
    let outcome = tokio::select! {
        outcome = run(&cli) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    match outcome {
        Ok(passed) if passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!(
                "concert-bench: {}",
                concert_outbox::error::cause_chain(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs the command and prints its report; false when the command's own checks failed.
async fn run(cli: &Cli) -> BenchResult<bool> {
    let url = cli.database_url.as_str();
    match &cli.command {
        Command::Relay(args) if args.destination == relay::DrainTo::Jetstream => {
            let report = jetstream::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(true)
        }
        Command::Relay(args) => {
            let report = relay::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(true)
        }
        Command::Flows(args) if args.topology == topologies::Topology::Split => {
            let report = topologies::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(true)
        }
        Command::Flows(args) => {
            let report = flows::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(true)
        }
        Command::Soak(args) => {
            let report = soak::run(args).await?;
            print_report(cli.json, &report)?;
            Ok(true)
        }
        Command::HotSeat(args) => {
            let report = hot_seat::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(report.passed())
        }
        Command::Queue(args) => {
            let report = queue::run(url, args).await?;
            print_report(cli.json, &report)?;
            Ok(report.passed())
        }
    }
}

fn print_report<R: serde::Serialize + std::fmt::Display>(
    json: bool,
    report: &R,
) -> BenchResult<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("\n{report}");
    }
    Ok(())
}
