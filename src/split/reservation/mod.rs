//! reservation-svc: users and their tokens, the catalog, reservations and the payment sagas, in
//! a database of its own, and the client's one address for the whole API (the monolith's
//! endpoints and shapes; `POST /reservations/{id}/payment` may answer 202 `payment_pending`).
//! It orchestrates each payment (`saga`), answers the points through payment-svc, and sends the
//! data platform `reservation.confirmed` and `reservation.cancelled` as the monolith does.

mod payment_client;
pub mod releases;
mod routes;
pub mod saga;
pub mod states;
mod waiters;

use super::bus::Direction;
use super::runtime::{Runtime, RuntimeError, ServiceSettings};
use crate::app_state::AppState;
use crate::config::ApiConfig;
use crate::db::{self, DbPool};
use crate::reservations::SeatHolds;
use actix_web::dev::Server;
use actix_web::web;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use pg_outbox::inbox::Consumed;
use pg_outbox::settings::{ConfigError, Settings};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use payment_client::PaymentClient;
pub use waiters::Waiters;

/// reservation-svc's own tables; the outbox's and the inbox's run with them.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("src/split/reservation/migrations");

/// How often stuck sagas are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `BIND_ADDR` when unset, as `concert-api`'s.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// reservation-svc's settings: the API's (`ApiConfig`: `ADMIN_TOKEN`, `HOLD_TTL_SECONDS`, ...),
/// the service's (`PAYMENT_SVC_URL`, `NATS_URL`, the relay's) and the saga's.
#[derive(Debug, Clone)]
pub struct ReservationSettings {
    pub api: ApiConfig,
    pub service: ServiceSettings,
    /// How long `POST /reservations/{id}/payment` waits for the saga before answering 202.
    pub sync_wait: Duration,
    /// How long a saga may wait for payment-svc before it is resolved without it.
    pub saga_timeout: Duration,
}

impl ReservationSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Settings(&lookup);
        let sync_wait: u64 = env.parsed_or("SAGA_SYNC_WAIT_MS", 1_000)?;
        let saga_timeout: u64 = env.parsed_or("SAGA_TIMEOUT_SECONDS", 30)?;
        if saga_timeout == 0 {
            return Err(ConfigError {
                name: "SAGA_TIMEOUT_SECONDS",
                reason: "must be at least 1".into(),
            });
        }
        let api = ApiConfig::from_lookup(&lookup)?;
        if api.queue.is_some() {
            // Refused rather than ignored: a rush would meet no queue at all.
            return Err(ConfigError {
                name: "QUEUE_ENABLED",
                reason: "reservation-svc has no waiting queue; it runs in concert-api".into(),
            });
        }
        Ok(ReservationSettings {
            api,
            service: ServiceSettings::from_lookup(
                &lookup,
                DEFAULT_BIND,
                "PAYMENT_SVC_URL",
                "http://127.0.0.1:8081",
            )?,
            sync_wait: Duration::from_millis(sync_wait),
            saga_timeout: Duration::from_secs(saga_timeout),
        })
    }
}

/// What the split's handlers reach beside [`AppState`].
pub struct SplitState {
    pub payments: PaymentClient,
    pub waiters: Waiters,
    pub sync_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the database")]
    Database(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Migration(#[from] db::MigrationError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    #[error("cannot bind the listening socket")]
    Bind(#[from] std::io::Error),
}

/// reservation-svc, migrated, bound and ready to run.
pub struct ReservationService {
    port: u16,
    server: Server,
    runtime: Runtime,
    sweeper: SagaSweeper,
}

impl ReservationService {
    pub async fn build(settings: ReservationSettings) -> Result<Self, StartError> {
        let listener = TcpListener::bind(settings.api.bind_addr)?;
        Self::build_on(settings, listener).await
    }

    /// As [`build`](Self::build), serving on `listener` instead of binding `BIND_ADDR`.
    pub async fn build_on(
        settings: ReservationSettings,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let service = &settings.service;
        let pool: DbPool = db::build_pool(service.database_url.expose(), service.db_pool_size)?;
        let applied = db::migrate_with(&pool, MIGRATIONS).await?;
        if !applied.is_empty() {
            log::info!("migrations applied versions={}", applied.join(","));
        }
        let waiters = Waiters::default();
        let holds = Arc::new(SeatHolds::new(
            settings.api.hold_concurrency as usize,
            settings.api.hold_ttl,
        ));
        let (woken, freed) = (waiters.clone(), holds.clone());
        let apply = Arc::new(move |conn: &mut diesel::PgConnection, envelope: &_| {
            let applied = saga::apply_reply(conn, envelope)?;
            woken.wake(envelope_reservation(envelope));
            Ok(match applied {
                Consumed::Applied(released) => {
                    if let Some(seat_id) = released {
                        freed.seat_released(seat_id);
                    }
                    Consumed::Applied(())
                }
                Consumed::Duplicate => Consumed::Duplicate,
            })
        });
        let runtime = Runtime::start(
            service,
            &pool,
            Direction::Commands,
            Direction::Replies,
            saga::CONSUMER,
            apply,
            true,
        )
        .await?;
        let state = web::Data::new(AppState {
            queue: None,
            pool: pool.clone(),
            admin_token: settings.api.admin_token.clone(),
            tokens: Default::default(),
            holds: holds.clone(),
            relay_waker: runtime.waker.clone(),
        });
        let split = web::Data::new(SplitState {
            payments: PaymentClient::new(&service.peer_url, &service.internal_token)?,
            waiters: waiters.clone(),
            sync_wait: settings.sync_wait,
        });
        let (inbox, internal_token) = (runtime.inbox(), Runtime::internal_token(service));
        let addr = listener.local_addr()?;
        let server = crate::startup::serve(listener, state, move |cfg| {
            cfg.app_data(split.clone())
                .app_data(inbox.clone())
                .app_data(internal_token.clone())
                .route("/internal/inbox", web::post().to(super::bus::receive));
            crate::routes::configure_with(cfg, routes::routes);
        })?;
        log::info!("reservation-svc listening addr={addr}");
        let sweeper = SagaSweeper::spawn(
            pool,
            runtime.waker.clone(),
            waiters,
            holds,
            settings.saga_timeout,
        );
        Ok(ReservationService {
            port: addr.port(),
            server,
            runtime,
            sweeper,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, then stops the sweeper, the relay and the consumer.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.runtime.run_until_stopped(self.server).await;
        self.sweeper.stop().await;
        served
    }
}

fn envelope_reservation(envelope: &super::messages::Envelope) -> i64 {
    envelope.message.reservation_id()
}

/// Resolves sagas that stopped moving, every second ([`releases::sweep`]): logged one by one and
/// counted in `saga_resolutions_total{resolution}`.
struct SagaSweeper {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl SagaSweeper {
    fn spawn(
        pool: DbPool,
        waker: pg_outbox::waker::RelayWaker,
        waiters: Waiters,
        holds: Arc<SeatHolds>,
        timeout: Duration,
    ) -> Self {
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let pool = pool.clone();
                let swept = tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get().map_err(|e| e.to_string())?;
                    releases::sweep(&mut conn, timeout).map_err(|e| e.to_string())
                })
                .await;
                match swept {
                    Ok(Ok(resolved)) if !resolved.is_empty() => {
                        for done in &resolved {
                            log::warn!(
                                "saga resolved without payment-svc reservation_id={} resolution={}; seat released, refund requested",
                                done.reservation_id,
                                done.release.as_str()
                            );
                            crate::metrics::global().observe_saga_resolution(done.release.as_str());
                            waiters.wake(done.reservation_id);
                            holds.seat_released(done.seat_id);
                        }
                        waker.wake();
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => log::warn!("saga sweep failed error=\"{error}\""),
                    Err(error) => log::warn!("saga sweep task failed error=\"{error}\""),
                }
                tokio::select! {
                    _ = tokio::time::sleep(SWEEP_EVERY) => {}
                    _ = stopping.cancelled() => return,
                }
            }
        });
        SagaSweeper { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_svc_refuses_a_waiting_queue_it_would_not_run() {
        let given = [
            ("DATABASE_URL", "postgres://x/y"),
            ("ADMIN_TOKEN", "t"),
            ("INTERNAL_TOKEN", "i"),
            ("QUEUE_ENABLED", "true"),
            ("REDIS_URL", "redis://127.0.0.1"),
        ];
        let lookup = |name: &str| {
            given
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let error = ReservationSettings::from_lookup(lookup).expect_err("refused");
        assert_eq!(error.name, "QUEUE_ENABLED");
    }
}
