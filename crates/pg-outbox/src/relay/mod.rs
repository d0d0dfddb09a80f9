//! The relay: drains the outbox to every destination, at least once, in per-aggregate order.
//!
//! One worker loop per destination, so a destination that is down or slow never holds back
//! another. Each loop reads: claim (lease, commit) -> send -> acknowledge (fenced by the lease)
//! -> claim again while there is work, else sleep until a NOTIFY or the poll interval. A loop
//! that panics is restarted (`loops.rs` says why).

pub mod backoff;
pub mod config;
pub mod delivery;
pub mod destination;
mod dispatch;
mod listener;
mod loops;
mod maintenance;
mod outcome;
pub mod store;

use crate::db::DbPool;
use chrono::{DateTime, Utc};
pub use config::RelayConfig;
pub use delivery::{event_payload, RenderBody, Rendered};
pub use destination::{Destination, Verdict};
pub use dispatch::{HttpDestination, HttpEndpoint};
use outcome::SortedVerdicts;
use std::collections::HashMap;
use std::sync::Arc;
use store::Claim;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("blocking task failed")]
    Join(#[from] tokio::task::JoinError),
}

/// What one round of `deliver_next_batch` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
    pub released: usize,
}

#[derive(Clone)]
pub struct Relay {
    pool: DbPool,
    config: Arc<RelayConfig>,
    destinations: Vec<Arc<dyn Destination>>,
    owner: String,
}

impl Relay {
    /// A relay with no destination yet; add them with [`with_destination`](Self::with_destination).
    /// `pool` needs [`RelayConfig::pool_size`] connections (see [`RelayConfig::build_pool`]).
    pub fn new(config: RelayConfig, pool: DbPool) -> Self {
        let owner = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Relay {
            pool,
            config: Arc::new(config),
            destinations: Vec::new(),
            owner,
        }
    }

    /// Adds a destination. It needs a name no other destination has, and gets `workers` loops
    /// of its own.
    pub fn with_destination(mut self, destination: Arc<dyn Destination>) -> Self {
        self.destinations.push(destination);
        self
    }

    /// Runs `work` with a pooled connection on the blocking pool.
    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> Result<T, RelayError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            Ok(work(&mut conn)?)
        })
        .await?
    }

    /// Makes sure every configured destination is registered, so new events fan out to it.
    pub async fn register_destinations(&self) -> Result<(), RelayError> {
        let registrations: Vec<store::Registration> = self
            .destinations
            .iter()
            .map(|d| store::Registration {
                name: d.name().to_owned(),
                event_types: d.event_types().map(<[String]>::to_vec),
            })
            .collect();
        self.with_db(move |conn| store::register_destinations(conn, &registrations))
            .await?;
        Ok(())
    }

    /// One round for one destination: claim due deliveries, send them, record the outcome.
    /// If `shutdown` fires mid-round, requests get one request timeout to finish; what is
    /// still unanswered then is released for another relay, never lost.
    pub async fn deliver_next_batch(
        &self,
        destination: &dyn Destination,
        shutdown: &CancellationToken,
    ) -> Result<Round, RelayError> {
        let (name, owner) = (destination.name().to_owned(), self.owner.clone());
        let (limit, lease) = (self.config.batch_size, self.config.lease);
        let claim = self
            .with_db(move |conn| store::claim_due_deliveries(conn, &name, &owner, limit, lease))
            .await?;
        if claim.deliveries.is_empty() {
            return Ok(Round::default());
        }
        let claim = Arc::new(claim);
        let verdicts = destination.deliver(&claim, shutdown).await;
        self.record(claim, verdicts).await
    }

    /// Acknowledges delivered rows, reschedules failed ones, releases unanswered ones.
    async fn record(
        &self,
        claim: Arc<Claim>,
        verdicts: Vec<(i64, Verdict)>,
    ) -> Result<Round, RelayError> {
        let sorted = SortedVerdicts::of(
            &claim,
            verdicts,
            self.config.backoff_base,
            self.config.backoff_max,
        );
        let claimed = claim.deliveries.len();
        let retrying = sorted.failures.len();
        let max_attempts = self.config.max_attempts;
        let committed_at: HashMap<i64, DateTime<Utc>> = claim
            .deliveries
            .iter()
            .map(|d| (d.outbox_id, d.created_at))
            .collect();
        let destination = claim.destination.clone();
        let (acked, dead, released) = self
            .with_db(move |conn| {
                let acked = store::acknowledge(conn, &claim, &sorted.delivered)?;
                let dead = store::record_failures(conn, &claim, &sorted.failures, max_attempts)?;
                let released = if sorted.unanswered.is_empty() {
                    0
                } else {
                    store::release(conn, &claim, &sorted.unanswered)?
                };
                if let Some(failure) = sorted.failures.first() {
                    log::warn!(
                        "delivery failed destination={} failed={} first_outbox_id={} error=\"{}\"",
                        claim.destination,
                        sorted.failures.len(),
                        failure.outbox_id,
                        failure.error
                    );
                }
                Ok((acked, dead, released))
            })
            .await?;
        observe_round(&destination, &acked, &committed_at, retrying - dead, dead);
        Ok(Round {
            claimed,
            delivered: acked.len(),
            retrying: retrying - dead,
            dead,
            released,
        })
    }

    /// Runs every destination's loop (restarted if it panics), the NOTIFY listener and the
    /// maintenance task until `shutdown`, then returns once in-flight work is finished or
    /// released and the listener's thread has ended.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        self.register_destinations().await?;
        log::info!(
            "relay started owner={} destinations={} workers={} batch_size={} concurrency={} poll_interval_ms={} listen={}",
            self.owner,
            self.destinations.iter().map(|d| d.describe()).collect::<Vec<_>>().join(","),
            self.config.workers,
            self.config.batch_size,
            self.config.concurrency,
            self.config.poll_interval.as_millis(),
            self.config.listen
        );
        // One loop per worker per destination, each with its own wake-up.
        let loops_to_run: Vec<(Arc<dyn Destination>, Arc<Notify>)> = self
            .destinations
            .iter()
            .flat_map(|d| {
                (0..self.config.workers).map(move |_| (d.clone(), Arc::new(Notify::new())))
            })
            .collect();
        let wakers: Vec<Arc<Notify>> = loops_to_run.iter().map(|(_, wake)| wake.clone()).collect();
        let listener = self.config.listen.then(|| {
            listener::spawn(
                self.config.database_url.expose().to_owned(),
                wakers,
                shutdown.clone(),
            )
        });
        let mut loops = JoinSet::new();
        for (destination, wake) in loops_to_run {
            let (relay, shutdown) = (self.clone(), shutdown.clone());
            loops.spawn(relay.keep_delivering(destination, wake, shutdown));
        }
        let maintenance = tokio::spawn(self.clone().run_maintenance(shutdown.clone()));
        while let Some(ended) = loops.join_next().await {
            if let Err(error) = ended {
                log::error!("relay loop task failed error=\"{error}\"");
            }
        }
        maintenance.abort();
        if let Some(listener) = listener {
            let _ = tokio::task::spawn_blocking(move || listener.join()).await;
        }
        log::info!("relay stopped owner={}", self.owner);
        Ok(())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "relay".into())
}

/// Metrics for one round's outcome: deliveries by outcome, and commit-to-delivery latency of
/// each acknowledged event.
fn observe_round(
    destination: &str,
    acked: &[i64],
    committed_at: &HashMap<i64, DateTime<Utc>>,
    retrying: usize,
    dead: usize,
) {
    let metrics = crate::metrics::global();
    let now = Utc::now();
    for committed in acked.iter().filter_map(|id| committed_at.get(id)) {
        metrics.observe_commit_to_delivery(
            destination,
            (now - *committed).to_std().unwrap_or_default(),
        );
    }
    metrics.observe_delivery(destination, "delivered", acked.len() as u64);
    metrics.observe_delivery(destination, "retry", retrying as u64);
    metrics.observe_delivery(destination, "dead", dead as u64);
    if dead > 0 {
        log::error!("deliveries parked as dead destination={destination} count={dead}; see `outbox-relay status`");
    }
}
