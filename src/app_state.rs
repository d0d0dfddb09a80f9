//! What every handler can reach: built once by `startup`, read by `routes`, `auth` and `pages`.

use crate::config::Secret;
use crate::db::DbPool;
use crate::reservations::SeatHolds;
use pg_outbox::waker::RelayWaker;

pub struct AppState {
    pub pool: DbPool,
    pub admin_token: Secret,
    pub tokens: crate::auth_cache::TokenCache,
    /// Hold admission and the taken-seats memory (`HOLD_CONCURRENCY`, `HOLD_TTL_SECONDS`).
    pub holds: std::sync::Arc<SeatHolds>,
    /// Wakes the relays after a request's transaction wrote an event.
    pub relay_waker: RelayWaker,
    /// The waiting queue, when `QUEUE_ENABLED`: holds and payments then need an active turn.
    pub queue: Option<std::sync::Arc<crate::queue::Queue>>,
}
