//! Prometheus metrics for the API and the relay: request counts and latency by route and
//! status, the outbox backlog by destination and state, deliveries by outcome, commit-to-
//! delivery latency, relay loops restarted after a panic, and pool usage. One registry per
//! process; `/metrics` renders it.

use crate::db::DbPool;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use diesel::{PgConnection, QueryResult};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod timeline;

/// One destination's backlog as the `outbox_backlog` and oldest-pending gauges show it. The
/// outbox supplies it (a [`ReadBacklog`]), so these metrics know nothing of its tables.
#[derive(Debug, Clone)]
pub struct BacklogGauges {
    pub destination: String,
    /// Deliveries by state: `pending`, `due`, `in_retry`, `in_flight`, `dead`.
    pub by_state: [(&'static str, i64); 5],
    pub oldest_pending_age_seconds: Option<f64>,
}

/// Reads every destination's backlog on a connection, for a scrape.
pub type ReadBacklog = fn(&mut PgConnection) -> QueryResult<Vec<BacklogGauges>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    destination: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabels {
    destination: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    commit_to_delivery: Family<DestinationLabels, Histogram, fn() -> Histogram>,
    loop_restarts: Family<DestinationLabels, Counter>,
    outbox: Family<OutboxLabels, Gauge>,
    oldest_pending: Family<DestinationLabels, Gauge<f64, AtomicU64>>,
    pool: Family<PoolLabels, Gauge>,
    timeline: timeline::Timeline,
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
            http_latency: Family::new_with_constructor(latency_histogram),
            deliveries: Family::default(),
            commit_to_delivery: Family::new_with_constructor(latency_histogram),
            loop_restarts: Family::default(),
            outbox: Family::default(),
            oldest_pending: Family::default(),
            pool: Family::default(),
            timeline: timeline::Timeline::default(),
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
        registry.register(
            "outbox_deliveries",
            "Delivery attempts by destination and outcome",
            metrics.deliveries.clone(),
        );
        registry.register(
            "outbox_commit_to_delivery_seconds",
            "From the event's transaction to the destination's acknowledgement",
            metrics.commit_to_delivery.clone(),
        );
        registry.register(
            "outbox_relay_loop_restarts",
            "Destination loops of this relay restarted after a panic",
            metrics.loop_restarts.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox deliveries by destination and state",
            metrics.outbox.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered event",
            metrics.oldest_pending.clone(),
        );
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

    pub fn observe_delivery(&self, destination: &str, outcome: &'static str, count: u64) {
        let labels = DeliveryLabels {
            destination: destination.to_owned(),
            outcome,
        };
        self.deliveries.get_or_create(&labels).inc_by(count);
    }

    pub fn observe_commit_to_delivery(&self, destination: &str, latency: Duration) {
        let labels = DestinationLabels {
            destination: destination.to_owned(),
        };
        self.commit_to_delivery
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        self.timeline.record(latency);
    }

    pub fn observe_loop_restart(&self, destination: &str) {
        let labels = DestinationLabels {
            destination: destination.to_owned(),
        };
        self.loop_restarts.get_or_create(&labels).inc();
    }

    /// Commit-to-delivery latency of this process's relay over the last ten minutes.
    pub fn recent_delivery_latency(&self) -> Vec<timeline::SlotSummary> {
        self.timeline.recent()
    }

    fn set_outbox(&self, backlog: &[BacklogGauges]) {
        for d in backlog {
            for (state, value) in d.by_state {
                self.outbox
                    .get_or_create(&OutboxLabels {
                        destination: d.destination.clone(),
                        state,
                    })
                    .set(value);
            }
            let labels = DestinationLabels {
                destination: d.destination.clone(),
            };
            self.oldest_pending
                .get_or_create(&labels)
                .set(d.oldest_pending_age_seconds.unwrap_or(0.0));
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
/// the label set).
pub async fn http_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let response = next.call(req).await?;
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

/// Refreshes the gauges that are read from the database (the pool's, and the backlog through
/// `read_backlog`) and renders every metric.
pub async fn scrape(
    pool: DbPool,
    pool_name: &'static str,
    read_backlog: ReadBacklog,
) -> HttpResponse {
    let metrics = global();
    metrics.set_pool(pool_name, &pool);
    let backlog = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        read_backlog(&mut conn).map_err(|e| e.to_string())
    })
    .await;
    match backlog {
        Ok(Ok(backlog)) => metrics.set_outbox(&backlog),
        Ok(Err(error)) => log::warn!("metrics cannot read the outbox error=\"{error}\""),
        Err(error) => log::warn!("metrics scrape task failed error=\"{error}\""),
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.render())
}
