//! `outbox-relay [run]`: drain the outbox to every destination until SIGTERM/Ctrl-C.
//! `outbox-relay status [--json]`: pending, due, in-retry, in-flight and dead counts, and which
//! relay has what in flight.
//! `outbox-relay replay-dead [--id N]`: re-queue dead deliveries.

use clap::{Parser, Subcommand};
use concert_outbox::config::Secret;
use concert_outbox::db;
use concert_outbox::error::cause_chain;
use concert_outbox::outbox::metrics::relay_metrics_server;
use concert_outbox::outbox::RelaySettings;
use diesel::{Connection, PgConnection};
use pg_outbox::{admin, leases};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    about = "Delivers outbox events to the data platform, the notifier and (with NATS_URL) JetStream, at least once"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand the relay runs, with these flags (and the environment).
    #[command(flatten)]
    run: Box<RunFlags>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay (the default). Settings come from the environment; see README.
    Run(Box<RunFlags>),
    /// Print the outbox's state per destination and the dead deliveries.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Re-queue dead deliveries: all of them, or those of one outbox event.
    ReplayDead {
        /// The outbox id of the event to re-queue.
        #[arg(long)]
        id: Option<i64>,
    },
}

/// Flags override the environment variable of the same meaning.
#[derive(clap::Args)]
struct RunFlags {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, env = "DATA_PLATFORM_URL")]
    data_platform_url: Option<String>,
    #[arg(long, env = "NOTIFY_URL")]
    notify_url: Option<String>,
    /// NATS server URLs, comma-separated: also publish every event to JetStream.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    #[arg(long, env = "RELAY_BATCH_SIZE")]
    batch_size: Option<String>,
    #[arg(long, env = "RELAY_CONCURRENCY")]
    concurrency: Option<String>,
    #[arg(long, env = "RELAY_WORKERS")]
    workers: Option<String>,
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS")]
    poll_interval_ms: Option<String>,
    #[arg(long, env = "RELAY_MAX_ATTEMPTS")]
    max_attempts: Option<String>,
    #[arg(long, env = "RELAY_BACKOFF_BASE_MS")]
    backoff_base_ms: Option<String>,
    #[arg(long, env = "RELAY_BACKOFF_MAX_MS")]
    backoff_max_ms: Option<String>,
    #[arg(long, env = "RELAY_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<String>,
    #[arg(long, env = "RELAY_LEASE_SECONDS")]
    lease_seconds: Option<String>,
    /// Serve `/metrics` and `/health` here (e.g. 0.0.0.0:9464); off when unset.
    #[arg(long, env = "RELAY_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

impl RunFlags {
    /// The setting named by its environment variable: the flag if given, else the variable
    /// (clap has already merged the two), else whatever the environment holds.
    fn lookup(&self, name: &str) -> Option<String> {
        let flag = match name {
            "DATABASE_URL" => &self.database_url,
            "DATA_PLATFORM_URL" => &self.data_platform_url,
            "NOTIFY_URL" => &self.notify_url,
            "NATS_URL" => &self.nats_url,
            "RELAY_BATCH_SIZE" => &self.batch_size,
            "RELAY_CONCURRENCY" => &self.concurrency,
            "RELAY_WORKERS" => &self.workers,
            "RELAY_POLL_INTERVAL_MS" => &self.poll_interval_ms,
            "RELAY_MAX_ATTEMPTS" => &self.max_attempts,
            "RELAY_BACKOFF_BASE_MS" => &self.backoff_base_ms,
            "RELAY_BACKOFF_MAX_MS" => &self.backoff_max_ms,
            "RELAY_REQUEST_TIMEOUT_MS" => &self.request_timeout_ms,
            "RELAY_LEASE_SECONDS" => &self.lease_seconds,
            _ => &None,
        };
        flag.clone().or_else(|| std::env::var(name).ok())
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(flags) => match RelaySettings::from_lookup(|name| flags.lookup(name)) {
            Ok(config) => run(config, flags.metrics_addr).await,
            Err(error) => {
                eprintln!("outbox-relay: configuration error: {error}");
                return ExitCode::from(2);
            }
        },
        Command::Status { json } => status(json),
        Command::ReplayDead { id } => replay_dead(id),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outbox-relay: {}", cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(
    settings: RelaySettings,
    metrics_addr: Option<std::net::SocketAddr>,
) -> Result<(), AnyError> {
    let pool = settings.build_pool()?;
    db::migrate(&pool).await?;
    let relay = settings.start_relay(pool.clone()).await?;
    let metrics = match metrics_addr {
        Some(addr) => {
            let server = relay_metrics_server(std::net::TcpListener::bind(addr)?, pool.clone())?;
            log::info!("relay metrics listening addr={addr}");
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    relay.run(shutdown).await?;
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C: the relay stops claiming, finishes or releases
/// its in-flight batch, and exits 0.
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                log::error!("cannot listen for SIGTERM error=\"{error}\"");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => log::info!("SIGTERM received; finishing in-flight deliveries"),
        _ = tokio::signal::ctrl_c() => log::info!("Ctrl-C received; finishing in-flight deliveries"),
    }
    shutdown.cancel();
}

fn connect() -> Result<PgConnection, AnyError> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "configuration error: DATABASE_URL: is required but not set")?;
    Ok(PgConnection::establish(Secret::new(url).expose())?)
}

fn status(json: bool) -> Result<(), AnyError> {
    let status = leases::outbox_report(&mut connect()?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{status}");
    }
    Ok(())
}

fn replay_dead(id: Option<i64>) -> Result<(), AnyError> {
    let requeued = admin::replay_dead(&mut connect()?, id)?;
    println!(
        "re-queued {requeued} dead deliver{}",
        if requeued == 1 { "y" } else { "ies" }
    );
    Ok(())
}
