//! Where a relay loop sends what it claimed. The configured HTTP endpoints are the built-in
//! kind (`dispatch.rs`); a caller adds another kind with
//! [`Relay::with_destination`](super::Relay::with_destination).

use super::delivery::Verdict;
use super::store::Claim;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A receiver of outbox events, with a delivery state of its own in `outbox_deliveries`.
pub trait Destination: Send + Sync {
    /// The name its deliveries are recorded under (`outbox_destinations.name`).
    fn name(&self) -> &str;

    /// How the relay's start-up log shows it; never with credentials.
    fn describe(&self) -> String {
        self.name().to_owned()
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
