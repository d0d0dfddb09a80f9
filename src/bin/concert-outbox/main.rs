//! `cargo run --release`: the whole system in one process for a newcomer. Without
//! DATABASE_URL it starts a private PostgreSQL from the machine's own server binaries (data in
//! `.data/`), and without REDIS_URL a private Redis for the waiting queue, then the API, the
//! relay and the mock data platform, seeds a demo concert and user, and prints what to try.
//! Ctrl-C stops everything, the private servers too.

mod demo;
mod split;

use concert_outbox::config::ApiConfig;
use concert_outbox::embedded_postgres::EmbeddedPostgres;
use concert_outbox::error::cause_chain;
use concert_outbox::queue::private_redis::PrivateRedis;
use concert_outbox::startup::Application;
use demo::{seed_demo, Demo};
use diesel::{Connection, PgConnection};
use mock_platform::{Faults, JetStreamSource, MockPlatformConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The whole system in one process, for trying it out: a private PostgreSQL (unless
/// DATABASE_URL is set), the API and its pages, the relay and the mock data platform, with demo
/// data. Settings come from the environment (see README.md); Ctrl-C stops everything.
#[derive(clap::Parser)]
#[command(name = "concert-outbox", version)]
struct Cli {
    /// NATS server URLs, comma-separated: the relay also publishes every event to JetStream,
    /// and the mock platform consumes the stream (`split`: the services talk through it).
    #[arg(long, env = "NATS_URL", global = true)]
    nats_url: Option<String>,
    #[command(subcommand)]
    topology: Option<Topology>,
}

#[derive(clap::Subcommand)]
enum Topology {
    /// The split: reservation-svc and payment-svc, each with its own database, orchestrating
    /// every payment as a saga.
    Split,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Anything else given is refused with usage, not ignored.
    let cli: Cli = clap::Parser::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let ran = match cli.topology {
        Some(Topology::Split) => split::run(cli.nats_url).await,
        None => run(cli).await,
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("concert-outbox: {}", cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), AnyError> {
    let data_dir = data_dir();
    // Held until the end of `run`: dropping it stops the private server.
    let (database_url, postgres) = given_or_private_database(&data_dir, "concert").await?;
    let mock_listener = bind_or_any_port("MOCK_BIND", "127.0.0.1:9090")?;
    let mock_url = format!("http://{}", mock_listener.local_addr()?);
    let admin_token = env_or(
        "ADMIN_TOKEN",
        &format!("admin-{}", uuid::Uuid::new_v4().simple()),
    );
    let mut settings: HashMap<String, String> = std::env::vars().collect();
    settings.insert("DATABASE_URL".into(), database_url.clone());
    settings.insert("ADMIN_TOKEN".into(), admin_token.clone());
    settings.insert("RELAY_IN_PROCESS".into(), "true".into());
    if let Some(urls) = cli.nats_url {
        settings.insert("NATS_URL".into(), urls);
    }
    settings
        .entry("DATA_PLATFORM_URL".into())
        .or_insert_with(|| mock_url.clone());
    if !settings.contains_key("BIND_ADDR") {
        let api = bind_or_any_port("BIND_ADDR", "127.0.0.1:8080")?;
        settings.insert("BIND_ADDR".into(), api.local_addr()?.to_string());
    }
    // Held until the end of `run`, like the private PostgreSQL.
    let redis = given_or_private_redis(&mut settings, &data_dir)?;
    let config = ApiConfig::from_lookup(|name| settings.get(name).cloned())?;
    let queue = config.queue.as_ref().map(|queue| {
        let server = redis.as_ref().map_or("REDIS_URL".to_string(), |r| {
            format!("private Redis on 127.0.0.1:{}", r.port())
        });
        format!("on, {} active at once; {server}", queue.active_limit)
    });
    // With NATS_URL the relay also publishes to JetStream, and the mock consumes the stream.
    let jetstream = config
        .relay
        .as_ref()
        .and_then(|relay| relay.jetstream.as_ref())
        .map(|stream| JetStreamSource {
            servers: stream.servers.clone(),
            stream: stream.stream.clone(),
            durable: "mock-data-platform".into(),
        });
    let mock = mock_platform::start(MockPlatformConfig {
        listener: mock_listener,
        faults: Faults::default(),
        log_file: None,
        jetstream: jetstream.clone(),
    })?;
    let mock_handle = mock.handle();
    tokio::spawn(mock);
    let app = Application::build(config).await?;

    let demo = tokio::task::spawn_blocking({
        let (url, token_file) = (database_url.clone(), data_dir.join("demo-token"));
        move || -> Result<Demo, AnyError> {
            std::fs::create_dir_all(token_file.parent().unwrap_or(&token_file))?;
            Ok(seed_demo(&mut PgConnection::establish(&url)?, &token_file)?)
        }
    })
    .await??;
    print_welcome(&Welcome {
        api: &format!("http://127.0.0.1:{}", app.port()),
        mock: &mock_url,
        admin_token: &admin_token,
        demo: &demo,
        postgres: postgres.as_ref(),
        jetstream: jetstream.as_ref(),
        queue: queue.as_deref(),
        split: None,
    });

    app.run_until_stopped().await?;
    mock_handle.stop(true).await;
    drop(redis);
    drop(postgres);
    log::info!("concert-outbox stopped");
    Ok(())
}

/// Binds the address in `variable`, or `default` when it is unset; a default that is taken
/// (another program on 8080) gives way to a free port, which the welcome text prints.
pub(crate) fn bind_or_any_port(
    variable: &str,
    default: &str,
) -> Result<std::net::TcpListener, AnyError> {
    use std::net::TcpListener;
    if let Some(addr) = std::env::var(variable).ok().filter(|v| !v.is_empty()) {
        return TcpListener::bind(&addr)
            .map_err(|e| format!("{variable}: cannot listen on {addr}: {e}").into());
    }
    TcpListener::bind(default).or_else(|error| {
        log::warn!("{default} is not free ({error}): listening on a free port instead; set {variable} to choose");
        Ok(TcpListener::bind("127.0.0.1:0")?)
    })
}

/// Where the private PostgreSQL and the demo's token live: `CONCERT_DATA_DIR`, else `.data`.
pub(crate) fn data_dir() -> PathBuf {
    PathBuf::from(std::env::var("CONCERT_DATA_DIR").unwrap_or_else(|_| ".data".into()))
}

/// `DATABASE_URL` when it is set; otherwise a private PostgreSQL started in `data_dir`, and the
/// URL of its database `database` (created if missing). The server stays up as long as the
/// returned `EmbeddedPostgres` is held.
pub(crate) async fn given_or_private_database(
    data_dir: &Path,
    database: &str,
) -> Result<(String, Option<EmbeddedPostgres>), AnyError> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Ok((url, None));
    }
    let postgres = tokio::task::spawn_blocking({
        let root = data_dir.to_path_buf();
        move || EmbeddedPostgres::start(&root)
    })
    .await??;
    ensure_database(&postgres.url("postgres"), database)?;
    Ok((postgres.url(database), Some(postgres)))
}

/// The waiting queue is on unless `QUEUE_ENABLED` says otherwise; its Redis is `REDIS_URL`
/// when set, else a private `redis-server` (log in `data_dir/redis`), returned to be held.
fn given_or_private_redis(
    settings: &mut HashMap<String, String>,
    data_dir: &Path,
) -> Result<Option<PrivateRedis>, AnyError> {
    let enabled = settings
        .entry("QUEUE_ENABLED".into())
        .or_insert_with(|| "true".into());
    if enabled.trim() != "true" || settings.get("REDIS_URL").is_some_and(|u| !u.is_empty()) {
        return Ok(None);
    }
    let redis = PrivateRedis::start(&data_dir.join("redis"))?;
    settings.insert("REDIS_URL".into(), redis.url());
    Ok(Some(redis))
}

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Creates database `name` on the server behind `maintenance_url` if it is missing.
pub(crate) fn ensure_database(maintenance_url: &str, name: &str) -> Result<(), AnyError> {
    use diesel::RunQueryDsl;
    let mut conn = PgConnection::establish(maintenance_url)?;
    let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
    )))
    .get_result(&mut conn)?;
    if !exists {
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
    }
    Ok(())
}

pub(crate) struct Welcome<'a> {
    pub api: &'a str,
    pub mock: &'a str,
    pub admin_token: &'a str,
    pub demo: &'a Demo,
    pub postgres: Option<&'a EmbeddedPostgres>,
    pub jetstream: Option<&'a JetStreamSource>,
    /// The waiting queue, when on: its limit and its Redis.
    pub queue: Option<&'a str>,
    /// Set for `concert-outbox split`.
    pub split: Option<SplitWelcome<'a>>,
}

pub(crate) struct SplitWelcome<'a> {
    pub payment_svc: &'a str,
    /// How the services talk: JetStream's servers or HTTP.
    pub bus: &'a str,
}

pub(crate) fn print_welcome(w: &Welcome) {
    let Welcome {
        api,
        mock,
        admin_token,
        demo,
        ..
    } = w;
    let seat = demo
        .free_seat
        .map_or("<seat id>".to_string(), |s| s.to_string());
    let token = &demo.token;
    let jetstream = w.jetstream.map_or(String::new(), |stream| {
        format!(
            "  jetstream:      stream {} on {} (the mock consumes it: {mock}/received)\n",
            stream.stream,
            stream.servers.join(",")
        )
    });
    let database = match w.postgres {
        None => "  database:       DATABASE_URL\n".to_string(),
        Some(postgres) => {
            let mut line = format!(
                "  database:       private PostgreSQL, data in {}\n",
                postgres.folder().path.display()
            );
            if let Some(from) = &postgres.folder().relocated_from {
                line.push_str(&format!(
                    "                  (the postgres user cannot enter {})\n",
                    from.display()
                ));
            }
            line
        }
    };
    let (title, services, pay_note) = match &w.split {
        None => ("concert-outbox is running.".to_string(), String::new(), ""),
        Some(split) => (
            "concert-outbox (split) is running: reservation-svc and payment-svc, each with its own database.".to_string(),
            format!(
                "  payment-svc:    {}  (internal; the API answers for it)\n  between them:   {}\n  databases:      concert_reservation, concert_payment\n",
                split.payment_svc, split.bus
            ),
            "\n     (202 payment_pending: the saga goes on; GET /reservations/<reservation id> shows how it ends)",
        ),
    };
    // With the queue on, a hold and a payment name the caller's active queue token.
    let (queue, join_step, queue_header) = match w.queue {
        None => (String::new(), String::new(), String::new()),
        Some(queue) => (
            format!("  queue:          {queue}\n"),
            format!(
                "\n  # join the waiting queue: its token is your Queue-Token, usable once its status is active\n  curl -s -X POST {api}/queue/tokens -H 'Authorization: Bearer {token}'\n"
            ),
            " -H 'Queue-Token: <queue token>'".to_string(),
        ),
    };
    println!(
        "\n{title}\n\
         \n  seat map:       {api}/\n  dashboard:      {api}/admin  (log in with the admin token)\n\
         \n  API:            {api}\n  data platform:  {mock}  (mock)\n{services}{jetstream}{queue}  metrics:        {api}/metrics\n{database}\
         \n  demo token:     {token}\n  admin token:    {admin_token}\n\
         \nTry it:\n{join_step}\
         \n  # hold a seat\n  curl -s -X POST {api}/reservations -H 'Authorization: Bearer {token}'{queue_header} -H 'Content-Type: application/json' -d '{{\"seat_id\": {seat}}}'\n\
         \n  # pay for it (use the id the hold returned){pay_note}\n  curl -s -X POST {api}/reservations/<reservation id>/payment -H 'Authorization: Bearer {token}'{queue_header}\n\
         \n  # see what the data platform received\n  curl -s {mock}/received\n\
         \nCtrl-C stops everything.\n"
    );
}
