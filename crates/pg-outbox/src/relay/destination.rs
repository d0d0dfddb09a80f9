//! Where a relay loop sends what it claimed, and what the answer means. HTTP endpoints
//! ([`super::HttpDestination`]) and, with the `jetstream` feature, a JetStream stream are
//! built in; a service adds any with [`Relay::with_destination`](super::Relay::with_destination).

use super::config::{usable_lease, RelayConfig};
use super::store::Claim;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A receiver of outbox events, with a delivery state of its own in `outbox_deliveries`.
pub trait Destination: Send + Sync {
    /// The name its deliveries are recorded under (`outbox_destinations.name`).
    fn name(&self) -> &str;

    /// How the relay's start-up log shows it; never with credentials.
    fn describe(&self) -> String {
        self.name().to_owned()
    }

    /// The event types it takes; `None` (the default) for every event. The fan-out creates
    /// deliveries for it only for these.
    fn event_types(&self) -> Option<&[String]> {
        None
    }

    /// Sends `claim`'s events and returns a verdict per outbox id. An id left out counts as
    /// unanswered and is released for another try, so a destination cut off by `shutdown`
    /// leaves out what it did not finish. It should return before the claim's lease runs
    /// out: after that another relay may claim the events, this one's acknowledgement is
    /// refused, and they are sent again.
    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<Claim>,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<(i64, Verdict)>>;
}

/// What a destination's answer means for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver has it (or had it already): acknowledge.
    Delivered,
    /// Not received for a reason that may pass (unreachable, timed out, overloaded, no
    /// leader): try again later with backoff, never give up.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refuses this event itself: retried with backoff, and parked as dead once
    /// it has used `RELAY_MAX_ATTEMPTS`.
    Rejected { error: String },
}

/// Resolves when a destination must stop waiting on a claim and return what it has: one
/// `request_timeout` after `shutdown` (so requests in flight can finish), or once the lease
/// has too little left for another request. What is unanswered then is released for another
/// try, never sent under a lease another relay may already hold.
pub async fn claim_cut_off(config: &RelayConfig, shutdown: &CancellationToken, destination: &str) {
    let after_shutdown = async {
        shutdown.cancelled().await;
        tokio::time::sleep(config.request_timeout).await;
    };
    tokio::select! {
        _ = after_shutdown => {}
        _ = tokio::time::sleep(usable_lease(config)) => log::warn!(
            "lease running out destination={destination}; releasing the unsent rest of the claim"
        ),
    }
}
