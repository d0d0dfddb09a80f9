//! How this service's events leave. The machinery (writing events inside a transaction, the
//! relay, its destinations, the inbox) is the `pg_outbox` crate, which knows nothing of
//! concerts; here is what this service puts on it: the reservation events it writes
//! ([`events`]), where the relay sends them ([`destinations`]: the data platform, the user
//! notifier, extra endpoints and, with `NATS_URL`, JetStream), and the relay's `/metrics`
//! server.

pub mod destinations;
pub mod events;
pub mod metrics;
mod notifier;

pub use destinations::{RelaySettings, StartRelayError};
