//! The consumer half of the pattern. A consumer of at-least-once deliveries (a broker's
//! redelivery, a relay that re-sends after a lost acknowledgement) records each event id in
//! the `inbox` table in the same transaction as its own effect: the second delivery of an
//! event finds its id there and changes nothing, and an effect that rolled back leaves no id
//! behind, so the redelivery applies it. Acknowledge the message to the broker only after
//! that transaction committed.

use diesel::prelude::*;
use uuid::Uuid;

/// What [`consume_once`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed<T> {
    /// First delivery: the effect ran and committed with the inbox row.
    Applied(T),
    /// Seen before by this consumer: nothing ran.
    Duplicate,
}

/// Runs `effect` and records `event_id` for `consumer` in one transaction, unless the
/// consumer already has it. Call it with a connection outside any transaction (or inside one
/// whose commit you then wait for before acknowledging).
pub fn consume_once<T, E>(
    conn: &mut PgConnection,
    consumer: &str,
    event_id: Uuid,
    effect: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<Consumed<T>, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        if !record_once(conn, consumer, event_id)? {
            return Ok(Consumed::Duplicate);
        }
        effect(conn).map(Consumed::Applied)
    })
}

/// Records that `consumer` received `event_id`; false when it already had. Call it inside the
/// transaction that applies the event, and apply it only when this returns true: two
/// deliveries racing each other serialise on the row, and the second sees false.
pub fn record_once(conn: &mut PgConnection, consumer: &str, event_id: Uuid) -> QueryResult<bool> {
    use crate::schema::inbox;
    let inserted = diesel::insert_into(inbox::table)
        .values((inbox::consumer.eq(consumer), inbox::event_id.eq(event_id)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(inserted == 1)
}

/// Forgets the ids `consumer` received before `before`. Only safe past the longest time a
/// sender may redeliver an event (for a JetStream consumer, its stream's retention of
/// unacknowledged messages; for the relay, its retry window): a redelivery after that would
/// be applied again. Returns how many were forgotten.
pub fn forget_received_before(
    conn: &mut PgConnection,
    consumer: &str,
    before: chrono::DateTime<chrono::Utc>,
) -> QueryResult<usize> {
    use crate::schema::inbox;
    diesel::delete(
        inbox::table
            .filter(inbox::consumer.eq(consumer))
            .filter(inbox::received_at.lt(before)),
    )
    .execute(conn)
}
