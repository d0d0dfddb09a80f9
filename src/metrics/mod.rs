//! Prometheus metrics for the API and the relay: request counts and latency by route and
//! status and pool usage, here; the outbox backlog by destination and state, deliveries by
//! outcome, commit-to-delivery latency and relay loops restarted after a panic, from
//! `pg_outbox::metrics`. One registry per process; `/metrics` renders it.

use crate::db::DbPool;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResolutionLabels {
    resolution: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SagaMessageLabels {
    event_type: &'static str,
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    saga_resolutions: Family<ResolutionLabels, Counter>,
    saga_messages: Family<SagaMessageLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pool: Family<PoolLabels, Gauge>,
    queue: QueueMetrics,
}

/// The waiting queue's: its size (read from Redis at each scrape, the same from every process)
/// and what this process's calls did.
#[derive(Default)]
struct QueueMetrics {
    waiting: Gauge,
    active: Gauge,
    admitted_per_second: Gauge<f64, std::sync::atomic::AtomicU64>,
    admissions: Counter,
    expirations: Family<ExpiryLabels, Counter>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let metrics = Metrics {
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(pg_outbox::metrics::latency_histogram),
            pool: Family::default(),
            saga_resolutions: Family::default(),
            saga_messages: Family::default(),
            queue: QueueMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests served",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            metrics.http_latency.clone(),
        );
        pg_outbox::metrics::global().register(&mut registry);
        registry.register(
            "saga_resolutions",
            "Payment sagas of the split resolved without the client: the hold ran out, or no \
             answer came within SAGA_TIMEOUT_SECONDS",
            metrics.saga_resolutions.clone(),
        );
        registry.register(
            "saga_messages",
            "Messages of the split a service received, by type and outcome (applied, or a \
             duplicate its inbox had already seen)",
            metrics.saga_messages.clone(),
        );
        metrics.queue.register(&mut registry);
        registry.register(
            "db_pool_connections",
            "Database pool connections by state",
            metrics.pool.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A split payment saga resolved by reservation-svc's sweeper (`hold_lapsed`, `timeout`).
    pub fn observe_saga_resolution(&self, resolution: &'static str) {
        self.saga_resolutions
            .get_or_create(&ResolutionLabels { resolution })
            .inc();
    }

    /// A message of the split received by this service's inbox: `applied`, or `duplicate`.
    pub fn observe_saga_message(&self, event_type: &'static str, outcome: &'static str) {
        self.saga_messages
            .get_or_create(&SagaMessageLabels {
                event_type,
                outcome,
            })
            .inc();
    }

    /// Users the waiting queue admitted in a call this process made.
    pub fn observe_queue_admissions(&self, admitted: u64) {
        if admitted > 0 {
            self.queue.admissions.inc_by(admitted);
        }
    }

    /// Queue tokens ended in a call this process made: `turn_ended` (active, never paid),
    /// `place_lost` (waiting, not polled), `paid`, `left`.
    pub fn observe_queue_expiry(&self, reason: &'static str, count: u64) {
        if count > 0 {
            self.queue
                .expirations
                .get_or_create(&ExpiryLabels { reason })
                .inc_by(count);
        }
    }

    async fn refresh_queue(&self, queue: &crate::queue::Queue) {
        match queue.counts().await {
            Ok(counts) => {
                self.queue.waiting.set(counts.waiting as i64);
                self.queue.active.set(counts.active as i64);
                self.queue
                    .admitted_per_second
                    .set(counts.admitted_last_10s as f64 / 10.0);
            }
            Err(error) => log::warn!(
                "metrics cannot read the queue error=\"{}\"",
                crate::error::cause_chain(&error)
            ),
        }
    }

    fn set_pool(&self, name: &'static str, pool: &DbPool) {
        let state = pool.state();
        let idle = i64::from(state.idle_connections);
        let in_use = i64::from(state.connections) - idle;
        self.pool
            .get_or_create(&PoolLabels {
                pool: name,
                state: "idle",
            })
            .set(idle);
        self.pool
            .get_or_create(&PoolLabels {
                pool: name,
                state: "in_use",
            })
            .set(in_use);
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            log::error!("cannot encode metrics error=\"{error}\"");
        }
        text
    }
}

/// Counts and times every request by its route pattern (not its path, so ids do not explode
/// the label set). The pattern is read after routing, which recorded the resource it matched;
/// read before, it costs a second walk of every route's pattern (regular expressions for the
/// ones with `{id}`, a tenth of the API's time in `concert-bench queue`).
pub async fn http_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let metrics = global();
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    Ok(response)
}

/// Refreshes the gauges that are read from the database (the pool's, and the outbox backlog)
/// and from the waiting queue's Redis, and renders every metric.
pub async fn scrape(
    pool: DbPool,
    pool_name: &'static str,
    queue: Option<&crate::queue::Queue>,
) -> HttpResponse {
    let metrics = global();
    metrics.set_pool(pool_name, &pool);
    if let Some(queue) = queue {
        metrics.refresh_queue(queue).await;
    }
    let backlog = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        pg_outbox::metrics::global()
            .refresh_backlog(&mut conn)
            .map_err(|e| e.to_string())
    })
    .await;
    match backlog {
        Ok(Ok(())) => {}
        Ok(Err(error)) => log::warn!("metrics cannot read the outbox error=\"{error}\""),
        Err(error) => log::warn!("metrics scrape task failed error=\"{error}\""),
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}

impl QueueMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "queue_waiting",
            "Users waiting in the queue for their turn",
            self.waiting.clone(),
        );
        registry.register(
            "queue_active",
            "Users whose turn it is (at most QUEUE_ACTIVE_LIMIT)",
            self.active.clone(),
        );
        registry.register(
            "queue_admitted_per_second",
            "Users admitted per second over the last ten seconds, by every API process",
            self.admitted_per_second.clone(),
        );
        registry.register(
            "queue_admissions",
            "Users admitted by this process's queue calls",
            self.admissions.clone(),
        );
        registry.register(
            "queue_expirations",
            "Queue tokens ended by this process's calls, by reason: turn_ended (active, never \
             paid), place_lost (waiting, not polled), paid, left",
            self.expirations.clone(),
        );
    }
}
