//! What each split service runs beside its HTTP server: the relay that delivers its outbox (its
//! messages to the peer, and for reservation-svc the platform's events), the waker that tells
//! the relay about new rows, and, with JetStream, the consumer of the messages sent to it.

use super::bus::{self, Apply, Direction, Inbox, Transport};
use crate::auth::InternalToken;
use crate::outbox::RelaySettings;
use actix_web::dev::Server;
use pg_outbox::db::DbPool;
use pg_outbox::relay::{Relay, RelayConfig};
use pg_outbox::settings::{ConfigError, Settings};
use pg_outbox::waker::RelayWaker;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The settings both services read: their database, address and pool, how they reach their
/// peer, and their relay's.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub database_url: pg_outbox::settings::Secret,
    pub bind_addr: SocketAddr,
    pub db_pool_size: u32,
    /// `INTERNAL_TOKEN`: the bearer token both services send to, and require on, the routes
    /// they call on each other (`/internal/*`).
    pub internal_token: pg_outbox::settings::Secret,
    /// The peer's HTTP address (its inbox without JetStream; payment-svc's points always).
    pub peer_url: String,
    pub transport: Transport,
    /// The relay's settings; its HTTP destinations are used by reservation-svc only.
    pub relay: RelaySettings,
    /// `SAGA_DUPLICATE_DELIVERIES`, a test hook: every message between the services is
    /// delivered twice, to show that the inboxes make the second one change nothing.
    pub duplicate_deliveries: bool,
}

impl ServiceSettings {
    /// Reads `DATABASE_URL`, `INTERNAL_TOKEN`, `BIND_ADDR` (default `default_bind`), `DB_POOL_SIZE`, `NATS_URL`
    /// (JetStream between the services when set), the peer's URL from `peer_variable`
    /// (default `default_peer`) and the relay's settings.
    pub fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        default_bind: SocketAddr,
        peer_variable: &'static str,
        default_peer: &str,
    ) -> Result<Self, ConfigError> {
        let env = Settings(lookup);
        let relay = RelaySettings::from_lookup(lookup)?;
        let peer_url = env.parsed_or(peer_variable, default_peer.to_string())?;
        let transport = match &relay.jetstream {
            Some(jetstream) => Transport::JetStream {
                servers: jetstream.servers.clone(),
            },
            None => Transport::Http {
                peer_url: peer_url.clone(),
            },
        };
        let db_pool_size: u32 = env.parsed_or("DB_POOL_SIZE", 16)?;
        if db_pool_size == 0 {
            return Err(ConfigError {
                name: "DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(ServiceSettings {
            database_url: pg_outbox::settings::Secret::new(env.required("DATABASE_URL")?),
            internal_token: pg_outbox::settings::Secret::new(env.required("INTERNAL_TOKEN")?),
            bind_addr: env.parsed_or("BIND_ADDR", default_bind)?,
            db_pool_size,
            peer_url,
            transport,
            relay,
            duplicate_deliveries: env.parsed_or("SAGA_DUPLICATE_DELIVERIES", false)?,
        })
    }

    pub fn relay_config(&self) -> &RelayConfig {
        &self.relay.relay
    }
}

/// The relay, the waker and the consumer of one service, started and stopped together.
pub struct Runtime {
    relay: Relay,
    pub waker: RelayWaker,
    inbox: Arc<Inbox>,
    consumer: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot build the relay's connection pool")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot reach the peer service")]
    Bus(#[from] bus::BusError),
    #[error("cannot start the relay")]
    Relay(#[from] crate::outbox::StartRelayError),
}

impl Runtime {
    /// Starts the waker, builds the relay (`outgoing` messages to the peer, plus the HTTP
    /// destinations of `with_endpoints`) and, with JetStream, the consumer of `incoming`
    /// messages as `durable`, applying each with `apply`.
    pub async fn start(
        settings: &ServiceSettings,
        pool: &DbPool,
        outgoing: Direction,
        incoming: Direction,
        durable: &'static str,
        apply: Apply,
        with_endpoints: bool,
    ) -> Result<Runtime, RuntimeError> {
        let waker = RelayWaker::spawn(pool.clone());
        let inbox = Arc::new(Inbox {
            pool: pool.clone(),
            apply,
            waker: waker.clone(),
        });
        let mut relay_settings = settings.relay.clone();
        // The peer's messages go through `outgoing`, whatever the transport; JetStream's
        // platform stream is the monolith's, not the split's.
        relay_settings.jetstream = None;
        if !with_endpoints {
            relay_settings.endpoints.clear();
        }
        let destinations = relay_settings.destination_count() + 1;
        let relay_pool = settings.relay_config().build_pool(destinations)?;
        let mut peer = bus::peer_destination(
            &settings.transport,
            outgoing,
            settings.relay_config(),
            &settings.internal_token,
        )
        .await?;
        if settings.duplicate_deliveries {
            peer = Arc::new(bus::SendTwice(peer));
        }
        let relay = relay_settings
            .start_relay(relay_pool)
            .await?
            .with_destination(peer);
        let consumer = match &settings.transport {
            Transport::JetStream { servers } => Some(bus::spawn_consumer(
                servers.clone(),
                settings.relay_config().clone(),
                incoming,
                durable,
                inbox.clone(),
                settings.duplicate_deliveries,
            )),
            Transport::Http { .. } => None,
        };
        Ok(Runtime {
            relay,
            waker,
            inbox,
            consumer,
        })
    }

    /// What `POST /internal/inbox` applies messages with.
    pub fn inbox(&self) -> actix_web::web::Data<Inbox> {
        actix_web::web::Data::from(self.inbox.clone())
    }

    /// What the `/internal/*` routes check callers against.
    pub fn internal_token(settings: &ServiceSettings) -> actix_web::web::Data<InternalToken> {
        actix_web::web::Data::new(InternalToken(settings.internal_token.clone()))
    }

    /// Runs the relay while `server` serves; once the server has stopped (SIGTERM or Ctrl-C),
    /// stops the consumer, the waker (after the wake-ups asked for) and the relay (which
    /// finishes or releases its batch), and returns.
    pub async fn run_until_stopped(self, server: Server) -> std::io::Result<()> {
        let shutdown = CancellationToken::new();
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let served = server.await;
        if let Some(consumer) = self.consumer {
            consumer.abort();
        }
        shutdown.cancel();
        self.waker.stop().await;
        match relay.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => log::error!(
                "relay failed error=\"{}\"",
                pg_outbox::error::cause_chain(&error)
            ),
            Err(error) => log::error!("relay task failed error=\"{error}\""),
        }
        served
    }
}

/// A split service binary's `main` after its arguments: logs at `RUST_LOG` (default `info`),
/// reads its settings (a bad one is one line and exit code 2), then `serve`s until SIGTERM or
/// Ctrl-C (a failure is one line and exit code 1).
pub async fn service_main<S, Served>(
    name: &str,
    settings: Result<S, ConfigError>,
    serve: impl FnOnce(S) -> Served,
) -> std::process::ExitCode
where
    Served: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    use std::process::ExitCode;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{name}: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match serve(settings).await {
        Ok(()) => {
            log::info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{name}: {}", crate::error::cause_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
