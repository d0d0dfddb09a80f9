//! The relay's HTTP work without its database: the same events POSTed straight to a fresh mock
//! platform, one per request or in arrays, with a client built like the relay's. What the relay
//! reaches divided by this is the share of the ceiling its claim/acknowledge cycle leaves.

use crate::platform::MockPlatform;
use crate::stats::per_second;
use crate::BenchResult;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The relay's default request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
pub struct BaselineRun {
    pub events_per_request: usize,
    pub in_flight: usize,
    pub seconds: f64,
    pub events_per_second: f64,
    pub failed_requests: usize,
    pub exactly_once: bool,
}

/// `count` events shaped like `reservation.confirmed` payloads, each with a fresh event_id.
pub fn sample_events(count: usize) -> Arc<Vec<Value>> {
    let now = chrono::Utc::now();
    let events = (0..count)
        .map(|n| {
            json!({
                "event_id": uuid::Uuid::new_v4(), "event_type": "reservation.confirmed",
                "occurred_at": now, "reservation_id": n + 1, "user_id": n % 1000 + 1,
                "seat_id": n + 1, "seat_no": n % 1000 + 1, "schedule_id": n / 1000 + 1,
                "concert_id": 1, "amount": 1000, "paid_at": now,
            })
        })
        .collect();
    Arc::new(events)
}

/// POSTs every event in requests of `per_request` (a lone object when 1, else an array), with
/// `in_flight` requests at once, and checks the platform got each event once.
pub async fn run(
    events: &Arc<Vec<Value>>,
    per_request: usize,
    in_flight: usize,
) -> BenchResult<BaselineRun> {
    let platform = MockPlatform::start()?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(in_flight)
        .tcp_nodelay(true)
        .build()?;
    let url = format!("{}/reservations", platform.url);
    let units = events.len().div_ceil(per_request.max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight.max(1))
        .map(|_| {
            let (client, url, events, next) =
                (client.clone(), url.clone(), events.clone(), next.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let unit = next.fetch_add(1, Ordering::Relaxed);
                    if unit >= units {
                        return failed;
                    }
                    let end = ((unit + 1) * per_request).min(events.len());
                    let slice = events.get(unit * per_request..end).unwrap_or_default();
                    if !post_unit(&client, &url, slice).await {
                        failed += 1;
                    }
                }
            })
        })
        .collect();
    let mut failed_requests = 0;
    for worker in workers {
        failed_requests += worker.await?;
    }
    let elapsed = started.elapsed();
    let expected: HashSet<String> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
        .collect();
    let exactly_once = platform.received().await?.is_exactly(&expected);
    platform.stop().await;
    Ok(BaselineRun {
        events_per_request: per_request,
        in_flight,
        seconds: elapsed.as_secs_f64(),
        events_per_second: per_second(events.len(), elapsed),
        failed_requests,
        exactly_once,
    })
}

/// One POST built the way the relay builds it (body rendered per request, ids in the
/// `Idempotency-Key`); true on a 2xx.
async fn post_unit(client: &reqwest::Client, url: &str, events: &[Value]) -> bool {
    let (body, key) = match events {
        [single] => (single.clone(), id_of(single)),
        many => (
            Value::Array(many.to_vec()),
            many.iter().map(id_of).collect::<Vec<_>>().join(","),
        ),
    };
    let sent = client
        .post(url)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await;
    matches!(sent, Ok(response) if response.status().is_success())
}

fn id_of(event: &Value) -> String {
    event["event_id"].as_str().unwrap_or_default().to_owned()
}

impl fmt::Display for BaselineRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} events/s ({} event(s) per POST, {} in flight, {:.2} s{}{})",
            self.events_per_second,
            self.events_per_request,
            self.in_flight,
            self.seconds,
            if self.failed_requests > 0 {
                format!(", {} FAILED requests", self.failed_requests)
            } else {
                String::new()
            },
            if self.exactly_once {
                ""
            } else {
                ", NOT exactly once"
            }
        )
    }
}
