//! Sending a claim to an HTTP destination: one batch POST, or one POST per event at bounded
//! concurrency, cut off at shutdown or before the lease runs out.

use super::config::RelayConfig;
use super::delivery::{self, RenderBody};
use super::destination::{claim_cut_off, Destination, Verdict};
use super::store::{Claim, ClaimedDelivery};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// An HTTP endpoint that receives events.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    /// The name deliveries are recorded under (`outbox_destinations.name`: `[a-z][a-z0-9_]*`).
    pub name: String,
    pub url: String,
    /// The body each event becomes ([`delivery::event_payload`] for the payload as written).
    pub render: RenderBody,
    /// Whether the endpoint accepts a JSON array of events in one POST.
    pub batch: bool,
    /// The event types it takes; `None` for every event.
    pub event_types: Option<Vec<String>>,
    /// Sent as `Authorization: Bearer <token>` with every POST, for an endpoint that checks
    /// who calls it; `None` sends no `Authorization`.
    pub bearer_token: Option<crate::settings::Secret>,
}

impl HttpEndpoint {
    /// The URL without any `user:password@`, for logs.
    pub fn url_for_logs(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                // Both only fail for URLs that cannot carry credentials at all.
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.to_string()
            }
            Err(_) => "<unparsable url>".into(),
        }
    }
}

/// Delivers to an [`HttpEndpoint`]: one batch POST per claim, or one POST per event at
/// `RELAY_CONCURRENCY`, cut off at shutdown or before the lease runs out.
pub struct HttpDestination {
    client: reqwest::Client,
    config: Arc<RelayConfig>,
    endpoint: HttpEndpoint,
}

impl HttpDestination {
    /// A destination for `endpoint` with the relay's timeouts and concurrency.
    pub fn new(endpoint: HttpEndpoint, config: &RelayConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .build()?;
        Ok(HttpDestination {
            client,
            config: Arc::new(config.clone()),
            endpoint,
        })
    }
}

impl Destination for HttpDestination {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    fn describe(&self) -> String {
        format!("{}@{}", self.endpoint.name, self.endpoint.url_for_logs())
    }

    fn event_types(&self) -> Option<&[String]> {
        self.endpoint.event_types.as_deref()
    }

    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<Claim>,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<(i64, Verdict)>> {
        Box::pin(post_claim(
            &self.client,
            &self.config,
            &self.endpoint,
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
    destination: &HttpEndpoint,
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
    let deadline = claim_cut_off(config, shutdown, &destination.name);
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
    destination: &HttpEndpoint,
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
    destination: &HttpEndpoint,
    event: &ClaimedDelivery,
) -> (i64, Verdict) {
    (
        event.outbox_id,
        delivery::post(client, destination, &[event]).await,
    )
}
