//! What operators see and do: the outbox's state per destination, the dead deliveries (with
//! the aggregates they hold back), and re-queueing dead ones.

use cached_sql::cached_sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, QueryableByName)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestinationStatus {
    #[diesel(sql_type = Text)]
    pub destination: String,
    /// Not yet delivered and not dead.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// Pending, due now and not leased by a relay.
    #[diesel(sql_type = BigInt)]
    pub due: i64,
    /// Pending after at least one failed attempt.
    #[diesel(sql_type = BigInt)]
    pub in_retry: i64,
    /// Leased by a relay right now.
    #[diesel(sql_type = BigInt)]
    pub in_flight: i64,
    #[diesel(sql_type = BigInt)]
    pub dead: i64,
    /// Seconds since the oldest pending event was committed.
    #[diesel(sql_type = Nullable<Double>)]
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadDelivery {
    #[diesel(sql_type = BigInt)]
    pub outbox_id: i64,
    #[diesel(sql_type = Text)]
    pub destination: String,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub aggregate_type: String,
    #[diesel(sql_type = BigInt)]
    pub aggregate_id: i64,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// Later events of the same aggregate waiting behind this one for this destination.
    #[diesel(sql_type = BigInt)]
    pub blocked_events: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxStatus {
    pub destinations: Vec<DestinationStatus>,
    pub dead: Vec<DeadDelivery>,
}

/// Dead deliveries listed at most.
const DEAD_LISTED: i64 = 100;

pub fn outbox_status(conn: &mut PgConnection) -> QueryResult<OutboxStatus> {
    let destinations = cached_sql(include_str!("admin/destination_status.sql")).load(conn)?;
    let dead = cached_sql(include_str!("admin/dead_deliveries.sql"))
        .bind::<BigInt, _>(DEAD_LISTED)
        .load(conn)?;
    Ok(OutboxStatus { destinations, dead })
}

/// An event every destination has acknowledged.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct SentEvent {
    #[diesel(sql_type = BigInt)]
    pub outbox_id: i64,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub aggregate_type: String,
    #[diesel(sql_type = BigInt)]
    pub aggregate_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the last destination acknowledged it.
    #[diesel(sql_type = Timestamptz)]
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

/// Events looked at, back from the newest, for [`latest_sent`].
const LATEST_SCANNED: i64 = 10_000;

/// Up to `limit` of the newest events that every destination has acknowledged, newest first,
/// among the last `LATEST_SCANNED` events: `sent_at` is not indexed, so the walk back along
/// the primary key is bounded for when a destination is down and the newest are all unsent.
pub fn latest_sent(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<SentEvent>> {
    cached_sql(include_str!("admin/latest_sent.sql"))
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(LATEST_SCANNED)
        .load(conn)
}

/// Re-queues dead deliveries (all of them, or those of event `outbox_id`) with fresh attempts
/// and wakes the relays. The event keeps its id, so receivers still deduplicate it. Returns
/// how many deliveries were re-queued.
pub fn replay_dead(conn: &mut PgConnection, outbox_id: Option<i64>) -> QueryResult<usize> {
    let requeued = cached_sql(include_str!("admin/replay_dead.sql"))
        .bind::<Nullable<BigInt>, _>(outbox_id)
        .execute(conn)?;
    if requeued > 0 {
        crate::wake_relays(conn);
    }
    Ok(requeued)
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "destination", "pending", "due", "in_retry", "in_flight", "dead", "oldest_age_s"
        )?;
        for d in &self.destinations {
            let age = d
                .oldest_pending_age_seconds
                .map_or("-".to_string(), |s| format!("{s:.1}"));
            writeln!(
                f,
                "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
                d.destination, d.pending, d.due, d.in_retry, d.in_flight, d.dead, age
            )?;
        }
        if self.dead.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "\ndead deliveries (replay with `outbox-relay replay-dead [--id N]`):"
        )?;
        for d in &self.dead {
            writeln!(
                f,
                "  outbox_id={} destination={} event_id={} {}#{} attempts={} blocks={} later event(s) last_error={:?}",
                d.outbox_id,
                d.destination,
                d.event_id,
                d.aggregate_type,
                d.aggregate_id,
                d.attempts,
                d.blocked_events,
                d.last_error.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}
