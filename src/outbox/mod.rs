//! The transactional outbox: events are written inside the caller's transaction (so they exist
//! exactly when the business change committed) and delivered after commit by the relay.

pub mod admin;
pub mod events;
pub mod leases;
pub mod metrics;
pub mod relay;
pub mod waker;

use diesel::prelude::*;
use uuid::Uuid;

/// An event about to be recorded. `payload` is the exact JSON object the data platform
/// receives.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: i64,
    pub event_type: &'static str,
    pub payload: serde_json::Value,
    pub trace_context: Option<String>,
}

/// Records `event` in the outbox. Call it inside the transaction that makes the change the
/// event describes; the `outbox_fan_out` trigger creates its per-destination deliveries. Once
/// that transaction has committed, wake the relays ([`waker::RelayWaker::wake`], or
/// [`wake_relays`] where no waker runs).
pub fn enqueue_event(conn: &mut PgConnection, event: &NewEvent) -> QueryResult<i64> {
    use crate::db::schema::outbox;
    diesel::insert_into(outbox::table)
        .values((
            outbox::event_id.eq(event.event_id),
            outbox::aggregate_type.eq(event.aggregate_type),
            outbox::aggregate_id.eq(event.aggregate_id),
            outbox::event_type.eq(event.event_type),
            outbox::payload.eq(&event.payload),
            outbox::trace_context.eq(event.trace_context.as_deref()),
        ))
        .returning(outbox::id)
        .get_result(conn)
}

/// Wakes relays with `NOTIFY outbox_events`, after the events' transaction committed.
///
/// A hint, never the carrier: if it is lost (a crash right after commit, a pooler that drops
/// notifications) the relays' polling still delivers. It is a transaction of its own (one
/// statement, so one round trip) with `synchronous_commit` off because PostgreSQL holds one
/// database-wide lock from a notifying transaction's pre-commit to the end of its commit:
/// inside a payment, that lock would span the payment's WAL flush and queue every payment's
/// commit behind the previous one.
pub fn wake_relays(conn: &mut PgConnection) {
    if in_transaction(conn) {
        // Turning synchronous_commit off here would apply to the caller's commit: a payment
        // answered 200 could then be lost in a crash. Polling delivers without the hint.
        log::error!("wake_relays called inside a transaction; not notifying");
        return;
    }
    // set_config(.., true) lasts until the end of the statement's own implicit transaction,
    // whose commit is the one it should not wait for.
    let notified = crate::db::cached_sql::cached_sql(
        "SELECT set_config('synchronous_commit', 'off', true), pg_notify('outbox_events', '')",
    )
    .execute(conn);
    if let Err(error) = notified {
        log::warn!("cannot notify relays (polling will deliver) error=\"{error}\"");
    }
}

fn in_transaction(conn: &mut PgConnection) -> bool {
    use diesel::connection::{Connection, TransactionManager};
    let status =
        <PgConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn);
    !matches!(status.transaction_depth(), Ok(None))
}
