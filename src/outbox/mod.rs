//! The transactional outbox: events are written inside the caller's transaction (so they exist
//! exactly when the business change committed) and delivered after commit by the relay.

pub mod admin;
pub mod events;
pub mod relay;

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
/// event describes; the `outbox_fan_out` trigger creates its per-destination deliveries and
/// notifies relays when that transaction commits.
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
