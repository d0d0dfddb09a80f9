//! Writing events: inside the caller's transaction, then a wake-up for the relays after it
//! committed.

use cached_sql::cached_sql;
use diesel::prelude::*;
use uuid::Uuid;

/// An event about to be recorded. `payload` is the JSON object every destination receives
/// (as it is, or rendered from it).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    /// What kind of thing the event is about (`"order"`); with `aggregate_id`, the unit
    /// whose events are delivered in commit order.
    pub aggregate_type: &'static str,
    pub aggregate_id: i64,
    pub event_type: &'static str,
    pub payload: serde_json::Value,
    /// W3C `traceparent` of the request that wrote the event, forwarded with each delivery.
    pub trace_context: Option<String>,
}

/// Records `event` in the outbox. Call it inside the transaction that makes the change the
/// event describes; the `outbox_fan_out` trigger creates its per-destination deliveries. (A
/// statement of the caller's may insert into `outbox` itself, with the same columns, where
/// one statement must do the whole change; the triggers do the rest.) Once that transaction
/// has committed, wake the relays ([`crate::waker::RelayWaker::wake`], or [`wake_relays`]
/// where no waker runs).
pub fn enqueue_event(conn: &mut PgConnection, event: &NewEvent) -> QueryResult<i64> {
    use crate::schema::outbox;
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
/// inside the business transaction, that lock would span its WAL flush and queue every
/// such commit behind the previous one.
pub fn wake_relays(conn: &mut PgConnection) {
    if in_transaction(conn) {
        // Turning synchronous_commit off here would apply to the caller's commit: a change
        // answered as done could then be lost in a crash. Polling delivers without the hint.
        log::error!("wake_relays called inside a transaction; not notifying");
        return;
    }
    // set_config(.., true) lasts until the end of the statement's own implicit transaction,
    // whose commit is the one it should not wait for.
    let notified = cached_sql(
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
