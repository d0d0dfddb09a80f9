//! `mock-data-platform --bind 127.0.0.1:9090 [--nats-url nats://127.0.0.1:4222]`: the
//! stand-in data platform, over HTTP and, with `--nats-url`, as a JetStream consumer.

use clap::Parser;
use mock_platform::{Faults, JetStreamSource, MockPlatformConfig};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "A stand-in data platform: receives, deduplicates and shows events")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    bind: SocketAddr,
    /// Share of deliveries answered with 500 (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer 503 to every delivery.
    #[arg(long)]
    down: bool,
    /// Append every accepted event to this file as JSON lines.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Also consume the events stream from these NATS servers (comma-separated), through a
    /// durable pull consumer; shown under `jetstream` in `GET /received`.
    #[arg(long, env = "NATS_URL", value_delimiter = ',')]
    nats_url: Vec<String>,
    /// The stream to consume.
    #[arg(long, env = "NATS_STREAM", default_value = "CONCERT_EVENTS")]
    nats_stream: String,
    /// The durable consumer's name.
    #[arg(long, default_value = "mock-data-platform")]
    nats_durable: String,
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.fail_rate) {
        eprintln!("mock-data-platform: --fail-rate must be between 0.0 and 1.0");
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(args.bind) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mock-data-platform: cannot bind {}: {error}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    let faults = Faults {
        fail_rate: args.fail_rate,
        latency_ms: args.latency_ms,
        down: args.down,
        ..Faults::default()
    };
    let config = MockPlatformConfig {
        listener,
        faults,
        log_file: args.log,
        jetstream: (!args.nats_url.is_empty()).then(|| JetStreamSource {
            servers: args
                .nats_url
                .iter()
                .map(|url| url.trim().to_owned())
                .collect(),
            stream: args.nats_stream,
            durable: args.nats_durable,
        }),
    };
    let server = match mock_platform::start(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("mock-data-platform: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    log::info!("mock-data-platform listening addr={}", args.bind);
    match server.await {
        Ok(()) => {
            log::info!("mock-data-platform stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mock-data-platform: {error}");
            ExitCode::FAILURE
        }
    }
}
