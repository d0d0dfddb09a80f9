//! The relay's Prometheus metrics: deliveries by destination and outcome, commit-to-delivery
//! latency, destination loops restarted after a panic, and the backlog by destination and
//! state. They live in one process-wide set ([`global`]) that the relay records into; a
//! service adds them to its own registry with [`RelayMetrics::register`] and refreshes the
//! backlog gauges from the database on each scrape with [`RelayMetrics::refresh_backlog`].

use crate::admin::outbox_status;
use crate::timeline::{SlotSummary, Timeline};
use diesel::{PgConnection, QueryResult};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

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
struct BacklogLabels {
    destination: String,
    state: &'static str,
}

/// 0.5 ms .. ~16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct RelayMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    commit_to_delivery: Family<DestinationLabels, Histogram, fn() -> Histogram>,
    loop_restarts: Family<DestinationLabels, Counter>,
    backlog: Family<BacklogLabels, Gauge>,
    oldest_pending: Family<DestinationLabels, Gauge<f64, AtomicU64>>,
    timeline: Timeline,
}

/// This process's relay metrics.
pub fn global() -> &'static RelayMetrics {
    static METRICS: OnceLock<RelayMetrics> = OnceLock::new();
    METRICS.get_or_init(|| RelayMetrics {
        deliveries: Family::default(),
        commit_to_delivery: Family::new_with_constructor(latency_histogram),
        loop_restarts: Family::default(),
        backlog: Family::default(),
        oldest_pending: Family::default(),
        timeline: Timeline::default(),
    })
}

impl RelayMetrics {
    /// Adds every relay metric to `registry` (each shares its values with this set).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "outbox_deliveries",
            "Delivery attempts by destination and outcome (delivered, retry, dead; duplicate: \
             delivered, and the destination said it had the event already)",
            self.deliveries.clone(),
        );
        registry.register(
            "outbox_commit_to_delivery_seconds",
            "From the event's transaction to the destination's acknowledgement",
            self.commit_to_delivery.clone(),
        );
        registry.register(
            "outbox_relay_loop_restarts",
            "Destination loops of this relay restarted after a panic",
            self.loop_restarts.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox deliveries by destination and state",
            self.backlog.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered event",
            self.oldest_pending.clone(),
        );
    }

    pub(crate) fn observe_delivery(&self, destination: &str, outcome: &'static str, count: u64) {
        let labels = DeliveryLabels {
            destination: destination.to_owned(),
            outcome,
        };
        self.deliveries.get_or_create(&labels).inc_by(count);
    }

    pub(crate) fn observe_commit_to_delivery(&self, destination: &str, latency: Duration) {
        let labels = DestinationLabels {
            destination: destination.to_owned(),
        };
        self.commit_to_delivery
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        self.timeline.record(latency);
    }

    pub(crate) fn observe_loop_restart(&self, destination: &str) {
        let labels = DestinationLabels {
            destination: destination.to_owned(),
        };
        self.loop_restarts.get_or_create(&labels).inc();
    }

    /// Commit-to-delivery latency of this process's relay over the last ten minutes.
    pub fn recent_delivery_latency(&self) -> Vec<SlotSummary> {
        self.timeline.recent()
    }

    /// Reads every destination's backlog and sets the backlog gauges, for a scrape.
    pub fn refresh_backlog(&self, conn: &mut PgConnection) -> QueryResult<()> {
        for d in outbox_status(conn)?.destinations {
            for (state, value) in [
                ("pending", d.pending),
                ("due", d.due),
                ("in_retry", d.in_retry),
                ("in_flight", d.in_flight),
                ("dead", d.dead),
            ] {
                let labels = BacklogLabels {
                    destination: d.destination.clone(),
                    state,
                };
                self.backlog.get_or_create(&labels).set(value);
            }
            let labels = DestinationLabels {
                destination: d.destination,
            };
            self.oldest_pending
                .get_or_create(&labels)
                .set(d.oldest_pending_age_seconds.unwrap_or(0.0));
        }
        Ok(())
    }
}
