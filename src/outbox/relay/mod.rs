//! The relay: drains the outbox to every destination, at least once, in per-aggregate order.
//!
//! One worker loop per destination, so a destination that is down or slow never holds back
//! another. Each loop reads: claim (lease, commit) -> POST -> acknowledge (fenced by the lease)
//! -> claim again while there is work, else sleep until a NOTIFY or the poll interval.

pub mod backoff;
pub mod config;
pub mod delivery;
mod listener;
pub mod store;

use crate::db::DbPool;
use crate::error::cause_chain;
use chrono::{DateTime, Utc};
use config::{DestinationConfig, RelayConfig};
use delivery::Verdict;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{Claim, ClaimedDelivery, Failure};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often missing `sent_at` stamps are repaired (cheap: it reads unsent events only).
const REPAIR_INTERVAL: Duration = Duration::from_secs(2);
/// How often sent events past retention are deleted.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
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
    client: reqwest::Client,
    config: Arc<RelayConfig>,
    owner: String,
}

impl Relay {
    pub fn new(config: RelayConfig, pool: DbPool) -> Result<Self, RelayError> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .build()?;
        let owner = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Relay {
            pool,
            client,
            config: Arc::new(config),
            owner,
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
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
        let names: Vec<String> = self
            .config
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect();
        self.with_db(move |conn| store::register_destinations(conn, &names))
            .await?;
        Ok(())
    }

    /// One round for one destination: claim due deliveries, POST them, record the outcome.
    /// If `shutdown` fires mid-round, requests get one request timeout to finish; what is
    /// still unanswered then is released for another relay, never lost.
    pub async fn deliver_next_batch(
        &self,
        destination: &DestinationConfig,
        shutdown: &CancellationToken,
    ) -> Result<Round, RelayError> {
        let (name, owner) = (destination.name.clone(), self.owner.clone());
        let (limit, lease) = (self.config.batch_size, self.config.lease);
        let claim = self
            .with_db(move |conn| store::claim_due_deliveries(conn, &name, &owner, limit, lease))
            .await?;
        if claim.deliveries.is_empty() {
            return Ok(Round::default());
        }
        let claim = Arc::new(claim);
        let verdicts = self.post_claim(destination, &claim, shutdown).await;
        self.record(claim, verdicts).await
    }

    /// POSTs a claim's events (as one batch, or one by one at bounded concurrency) and
    /// returns a verdict per outbox id. Ids missing from the answer were cut off, by shutdown
    /// or because the lease was running out: requests still queued then must not be sent
    /// under a lease another relay may already hold, so they are released instead.
    async fn post_claim(
        &self,
        destination: &DestinationConfig,
        claim: &Arc<Claim>,
        shutdown: &CancellationToken,
    ) -> Vec<(i64, Verdict)> {
        let units: Vec<Vec<usize>> = if destination.batch {
            vec![(0..claim.deliveries.len()).collect()]
        } else {
            (0..claim.deliveries.len()).map(|i| vec![i]).collect()
        };
        let concurrency = self.config.concurrency;
        let limit = Arc::new(Semaphore::new(concurrency));
        let mut tasks = JoinSet::new();
        for unit in units {
            let (client, destination, claim, limit) = (
                self.client.clone(),
                destination.clone(),
                claim.clone(),
                limit.clone(),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                deliver_unit(&client, &destination, &claim.deliveries, &unit, concurrency).await
            });
        }
        let grace = self.config.request_timeout;
        let shutdown_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let lease_deadline = tokio::time::sleep(config::usable_lease(&self.config));
        let deadline = async {
            tokio::select! {
                _ = shutdown_deadline => {}
                _ = lease_deadline => log::warn!(
                    "lease running out destination={}; releasing the unsent rest of the claim",
                    destination.name
                ),
            }
        };
        tokio::pin!(deadline);
        let mut verdicts = Vec::with_capacity(claim.deliveries.len());
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    Some(Ok(answered)) => verdicts.extend(answered),
                    Some(Err(error)) => log::error!("delivery task failed error=\"{error}\""),
                    None => break,
                },
                _ = &mut deadline => {
                    tasks.abort_all();
                    break;
                }
            }
        }
        verdicts
    }

    /// Acknowledges delivered rows, reschedules failed ones, releases unanswered ones.
    async fn record(
        &self,
        claim: Arc<Claim>,
        verdicts: Vec<(i64, Verdict)>,
    ) -> Result<Round, RelayError> {
        let config = self.config.clone();
        let by_id: HashMap<i64, &ClaimedDelivery> =
            claim.deliveries.iter().map(|d| (d.outbox_id, d)).collect();
        let mut delivered = Vec::new();
        let mut failures = Vec::new();
        for (outbox_id, verdict) in &verdicts {
            let attempts = by_id.get(outbox_id).map_or(1, |d| d.attempts);
            let retry = |retry_after| {
                backoff::delay_after(
                    attempts,
                    config.backoff_base,
                    config.backoff_max,
                    retry_after,
                )
            };
            match verdict {
                Verdict::Delivered => delivered.push(*outbox_id),
                Verdict::Retry { error, retry_after } => failures.push(Failure {
                    outbox_id: *outbox_id,
                    retry_in: retry(*retry_after),
                    error: error.clone(),
                    permanent: false,
                }),
                Verdict::Rejected { error } => failures.push(Failure {
                    outbox_id: *outbox_id,
                    retry_in: retry(None),
                    error: error.clone(),
                    permanent: true,
                }),
            }
        }
        let answered: std::collections::HashSet<i64> = verdicts.iter().map(|(id, _)| *id).collect();
        let unanswered: Vec<i64> = claim
            .deliveries
            .iter()
            .map(|d| d.outbox_id)
            .filter(|id| !answered.contains(id))
            .collect();
        let claimed = claim.deliveries.len();
        let retrying = failures.len();
        let max_attempts = config.max_attempts;
        let destination = claim.destination.clone();
        let committed_at: HashMap<i64, DateTime<Utc>> = claim
            .deliveries
            .iter()
            .map(|d| (d.outbox_id, d.created_at))
            .collect();
        let (acked, dead, released) = self
            .with_db(move |conn| {
                let acked = store::acknowledge(conn, &claim, &delivered)?;
                let dead = store::record_failures(conn, &claim, &failures, max_attempts)?;
                let released = if unanswered.is_empty() {
                    0
                } else {
                    store::release(conn, &claim, &unanswered)?
                };
                if let Some(failure) = failures.first() {
                    log::warn!(
                        "delivery failed destination={} failed={} first_outbox_id={} error=\"{}\"",
                        claim.destination,
                        failures.len(),
                        failure.outbox_id,
                        failure.error
                    );
                }
                Ok((acked, dead, released))
            })
            .await?;
        let metrics = crate::metrics::global();
        let now = Utc::now();
        for outbox_id in &acked {
            if let Some(committed) = committed_at.get(outbox_id) {
                metrics.observe_commit_to_delivery(
                    &destination,
                    (now - *committed).to_std().unwrap_or_default(),
                );
            }
        }
        metrics.observe_delivery(&destination, "delivered", acked.len() as u64);
        metrics.observe_delivery(&destination, "retry", (retrying - dead) as u64);
        metrics.observe_delivery(&destination, "dead", dead as u64);
        if dead > 0 {
            log::error!("deliveries parked as dead destination={destination} count={dead}; see `outbox-relay status`");
        }
        let acked = acked.len();
        Ok(Round {
            claimed,
            delivered: acked,
            retrying: retrying - dead,
            dead,
            released,
        })
    }

    /// Runs every destination's loop, the NOTIFY listener and the maintenance task until
    /// `shutdown`, then returns once in-flight work is finished or released.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RelayError> {
        self.register_destinations().await?;
        log::info!(
            "relay started owner={} destinations={} workers={} batch_size={} concurrency={} poll_interval_ms={} listen={}",
            self.owner,
            self.config.destinations.iter().map(|d| format!("{}@{}", d.name, d.url)).collect::<Vec<_>>().join(","),
            self.config.workers,
            self.config.batch_size,
            self.config.concurrency,
            self.config.poll_interval.as_millis(),
            self.config.listen
        );
        // One loop per worker per destination, each with its own wake-up.
        let loops_to_run: Vec<(DestinationConfig, Arc<Notify>)> = self
            .config
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
            loops.spawn(async move { relay.run_destination(destination, wake, shutdown).await });
        }
        let maintenance = tokio::spawn(self.clone().run_maintenance(shutdown.clone()));
        while loops.join_next().await.is_some() {}
        maintenance.abort();
        if let Some(listener) = listener {
            let _ = tokio::task::spawn_blocking(move || listener.join()).await;
        }
        log::info!("relay stopped owner={}", self.owner);
        Ok(())
    }

    async fn run_destination(
        self,
        destination: DestinationConfig,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        while !shutdown.is_cancelled() {
            match self.deliver_next_batch(&destination, &shutdown).await {
                // There may be more: claim again straight away.
                Ok(round) if round.claimed > 0 => {
                    log::debug!("round destination={} {round:?}", destination.name);
                    continue;
                }
                Ok(_) => {}
                Err(error) => log::error!(
                    "relay round failed destination={} error=\"{}\"",
                    destination.name,
                    cause_chain(&error)
                ),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// Repairs lost `sent_at` stamps every few seconds and applies retention every minute.
    async fn run_maintenance(self, shutdown: CancellationToken) {
        let mut last_retention: Option<std::time::Instant> = None;
        loop {
            let retention = self.config.retention;
            let retention_due = last_retention.is_none_or(|at| at.elapsed() >= RETENTION_INTERVAL);
            if retention_due {
                last_retention = Some(std::time::Instant::now());
            }
            let work = self.with_db(move |conn| {
                let deleted = if retention_due {
                    store::delete_sent_events(conn, retention)?
                } else {
                    0
                };
                Ok((deleted, store::repair_sent_stamps(conn)?))
            });
            match work.await {
                Ok((0, 0)) => {}
                Ok((deleted, repaired)) => {
                    log::info!("outbox maintenance deleted={deleted} repaired_sent_at={repaired}")
                }
                Err(error) => log::warn!(
                    "outbox maintenance failed error=\"{}\"",
                    cause_chain(&error)
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(REPAIR_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Delivers one unit (a batch, or a single event). A rejected batch is retried event by event
/// at once (at most `concurrency` at a time), so one poison event cannot drag its batch-mates
/// towards the dead letter.
async fn deliver_unit(
    client: &reqwest::Client,
    destination: &DestinationConfig,
    deliveries: &[ClaimedDelivery],
    unit: &[usize],
    concurrency: usize,
) -> Vec<(i64, Verdict)> {
    use futures_util::StreamExt;
    let events: Vec<&ClaimedDelivery> = unit.iter().map(|&i| &deliveries[i]).collect();
    let verdict = delivery::post(client, destination, &events).await;
    if matches!(verdict, Verdict::Rejected { .. }) && events.len() > 1 {
        // Collected first: a lazy `map` would make the spawned future's type carry a closure
        // over borrowed events, which cannot be proven Send for every lifetime.
        let singles: Vec<_> = events
            .iter()
            .map(|&event| post_single(client, destination, event))
            .collect();
        return futures_util::stream::iter(singles)
            .buffer_unordered(concurrency)
            .collect()
            .await;
    }
    events
        .iter()
        .map(|event| (event.outbox_id, verdict.clone()))
        .collect()
}

async fn post_single(
    client: &reqwest::Client,
    destination: &DestinationConfig,
    event: &ClaimedDelivery,
) -> (i64, Verdict) {
    (
        event.outbox_id,
        delivery::post(client, destination, &[event]).await,
    )
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
