//! Sending a claim to an HTTP destination: one batch POST, or one POST per event at bounded
//! concurrency, cut off at shutdown or before the lease runs out.

use super::config::{usable_lease, DestinationConfig, RelayConfig};
use super::delivery::{self, Verdict};
use super::destination::Destination;
use super::store::{Claim, ClaimedDelivery};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A configured endpoint (`DATA_PLATFORM_URL`, `NOTIFY_URL`, `RELAY_EXTRA_DESTINATIONS`).
pub(super) struct HttpDestination {
    pub client: reqwest::Client,
    pub config: Arc<RelayConfig>,
    pub destination: DestinationConfig,
}

impl Destination for HttpDestination {
    fn name(&self) -> &str {
        &self.destination.name
    }

    fn describe(&self) -> String {
        format!(
            "{}@{}",
            self.destination.name,
            self.destination.url_for_logs()
        )
    }

    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<Claim>,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<(i64, Verdict)>> {
        Box::pin(post_claim(
            &self.client,
            &self.config,
            &self.destination,
            claim,
            shutdown,
        ))
    }
}

/// POSTs a claim's events (as one batch, or one by one at bounded concurrency) and
/// returns a verdict per outbox id. Ids missing from the answer were cut off, by shutdown
/// or because the lease was running out: requests still queued then must not be sent
/// under a lease another relay may already hold, so they are released instead.
async fn post_claim(
    client: &reqwest::Client,
    config: &RelayConfig,
    destination: &DestinationConfig,
    claim: &Arc<Claim>,
    shutdown: &CancellationToken,
) -> Vec<(i64, Verdict)> {
    let units: Vec<Vec<usize>> = if destination.batch {
        vec![(0..claim.deliveries.len()).collect()]
    } else {
        (0..claim.deliveries.len()).map(|i| vec![i]).collect()
    };
    let concurrency = config.concurrency;
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for unit in units {
        let (client, destination, claim, limit) = (
            client.clone(),
            destination.clone(),
            claim.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            deliver_unit(&client, &destination, &claim.deliveries, &unit, concurrency).await
        });
    }
    let grace = config.request_timeout;
    let shutdown_deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    let lease_deadline = tokio::time::sleep(usable_lease(config));
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
