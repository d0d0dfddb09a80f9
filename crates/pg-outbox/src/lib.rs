//! pg-outbox: a transactional outbox and inbox for diesel and PostgreSQL.
//!
//! - **Writing**: [`enqueue_event`] records an event inside the caller's transaction, so it
//!   exists exactly when the change it describes committed. A trigger fans it out into one
//!   delivery row per registered destination, each with its own attempts, backoff and lease.
//! - **Delivering**: a [`relay::Relay`] claims due deliveries under a lease (`FOR UPDATE SKIP
//!   LOCKED`, a fencing token), hands them to a [`relay::Destination`], and acknowledges,
//!   reschedules or parks each one dead; never holding a transaction across the network, and
//!   never more than one event of an aggregate in flight per destination, so each aggregate's
//!   events arrive in commit order. Destinations built in: HTTP endpoints
//!   ([`relay::HttpDestination`]) and, with the `jetstream` feature, a NATS JetStream stream.
//! - **Receiving**: [`inbox`] records a consumed event id in the same transaction as the
//!   consumer's own effect, so a redelivered message changes nothing.
//! - **Operating**: [`admin`] and [`leases`] report backlog, dead deliveries and who has what
//!   in flight, and re-queue dead deliveries; [`metrics`] registers the relay's Prometheus
//!   metrics into the caller's registry.
//!
//! The tables come with the crate: run [`MIGRATIONS`] beside your own (see
//! [`migrations`](crate::migrations)). The crate knows nothing of the domain that uses it.

pub mod admin;
pub mod db;
pub mod error;
pub mod inbox;
#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod leases;
pub mod metrics;
pub mod migrations;
pub mod relay;
pub mod schema;
pub mod settings;
pub mod timeline;
pub mod waker;
mod write;

pub use migrations::MIGRATIONS;
pub use write::{enqueue_event, wake_relays, NewEvent};

/// The README's "use the outbox in your own service" example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExample;

#[cfg(test)]
mod tests {
    #[test]
    fn every_sql_file_names_exactly_the_binds_it_uses() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let checked = cached_sql::check_sql_files_under(&src).unwrap();
        assert!(checked >= 5, "found only {checked} .sql files");
    }
}
