//! payment-svc: the balances, the point ledger and the payments, in a database of its own. It
//! answers reservation-svc's commands (pay, refund) through its inbox, each in one transaction
//! with the reply it writes to its outbox, and reservation-svc's synchronous point calls
//! (`/internal/balances/...`). It knows nothing of seats or reservation states.

pub mod ledger;
mod routes;

use super::bus::{ApplyError, Direction};
use super::messages::{Envelope, Message};
use super::runtime::{Runtime, RuntimeError, ServiceSettings};
use crate::db::{self, DbPool};
use actix_web::dev::Server;
use diesel::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use pg_outbox::inbox::{consume_once, Consumed};
use std::net::{SocketAddr, TcpListener};

/// payment-svc's own tables; the outbox's and the inbox's run with them.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("src/split/payment/migrations");

/// The name payment-svc records its inbox rows (and its JetStream consumer) under.
pub const CONSUMER: &str = "payment-svc";

/// `BIND_ADDR` when unset.
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);

/// Reads the settings from `lookup`: the common ones, with reservation-svc at
/// `RESERVATION_SVC_URL` (default `http://127.0.0.1:8080`).
pub fn settings_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ServiceSettings, pg_outbox::settings::ConfigError> {
    ServiceSettings::from_lookup(
        &lookup,
        DEFAULT_BIND,
        "RESERVATION_SVC_URL",
        "http://127.0.0.1:8080",
    )
}

/// Applies one command: pays or refunds, and writes the reply, in one transaction with the
/// command's inbox row.
pub fn apply(conn: &mut PgConnection, envelope: &Envelope) -> Result<Consumed<()>, ApplyError> {
    consume_once(conn, CONSUMER, envelope.event_id, |conn| {
        let reply = match &envelope.message {
            Message::PaymentRequested {
                reservation_id,
                user_id,
                amount,
                payment_key,
            } => ledger::pay(conn, *reservation_id, *user_id, *amount, payment_key)?,
            Message::RefundRequested { reservation_id } => ledger::refund(conn, *reservation_id)?,
            other => return Err(ApplyError::NotForThisService(other.event_type())),
        };
        pg_outbox::enqueue_event(conn, &reply.into_event(None))?;
        Ok(())
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the database")]
    Database(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Migration(#[from] db::MigrationError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot bind the listening socket")]
    Bind(#[from] std::io::Error),
}

/// payment-svc, migrated, bound and ready to run.
pub struct PaymentService {
    port: u16,
    server: Server,
    runtime: Runtime,
}

impl PaymentService {
    pub async fn build(settings: ServiceSettings) -> Result<Self, StartError> {
        let pool: DbPool = db::build_pool(settings.database_url.expose(), settings.db_pool_size)?;
        let applied = db::migrate_with(&pool, MIGRATIONS).await?;
        if !applied.is_empty() {
            log::info!("migrations applied versions={}", applied.join(","));
        }
        let runtime = Runtime::start(
            &settings,
            &pool,
            Direction::Replies,
            Direction::Commands,
            CONSUMER,
            std::sync::Arc::new(apply),
            false,
        )
        .await?;
        let listener = TcpListener::bind(settings.bind_addr)?;
        let port = listener.local_addr()?.port();
        let server = routes::server(
            listener,
            pool,
            runtime.inbox(),
            Runtime::internal_token(&settings),
        )?;
        log::info!(
            "payment-svc listening addr={}:{port}",
            settings.bind_addr.ip()
        );
        Ok(PaymentService {
            port,
            server,
            runtime,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, then stops the relay and the consumer and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.runtime.run_until_stopped(self.server).await
    }
}
