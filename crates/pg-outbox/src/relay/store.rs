//! The relay's database side: claim due deliveries under a lease, acknowledge or reschedule
//! them only while the lease is still ours, and keep the table small. Every function is one
//! short autocommit statement (or a few), never a transaction held across an HTTP call.

use cached_sql::cached_sql;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use std::time::Duration;
use uuid::Uuid;

/// One event claimed for one destination.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = BigInt)]
    pub outbox_id: i64,
    /// Including the attempt this claim starts.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = BigInt)]
    pub aggregate_id: i64,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    pub trace_context: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// A claim: the rows, and the fencing token that proves they are still ours.
#[derive(Debug, Clone)]
pub struct Claim {
    pub destination: String,
    pub token: Uuid,
    pub deliveries: Vec<ClaimedDelivery>,
}

/// A destination as the fan-out trigger knows it: its name and the event types it takes
/// (`None`: every event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub event_types: Option<Vec<String>>,
}

/// Registers destinations so the fan-out trigger creates deliveries for them, each for the
/// event types it takes; a destination registered before gets the types given now.
pub fn register_destinations(
    conn: &mut PgConnection,
    destinations: &[Registration],
) -> QueryResult<usize> {
    use crate::schema::outbox_destinations::dsl::*;
    let rows: Vec<_> = destinations
        .iter()
        .map(|d| (name.eq(&d.name), event_types.eq(d.event_types.as_ref())))
        .collect();
    diesel::insert_into(outbox_destinations)
        .values(&rows)
        .on_conflict(name)
        .do_update()
        .set(event_types.eq(diesel::upsert::excluded(event_types)))
        .execute(conn)
}

/// The claim statement (`claim_due_deliveries.sql`, whose first comment names its binds).
/// Public so tests can EXPLAIN it.
pub const CLAIM_DUE_DELIVERIES: &str = include_str!("claim_due_deliveries.sql");

/// Claims up to `limit` due deliveries for `destination`, oldest first, and leases them to
/// `owner` for `lease`. `SKIP LOCKED` lets relays claim side by side without waiting on each
/// other. A delivery is skipped while an earlier event of the same aggregate is still owed to
/// this destination (pending, in flight or dead), so each aggregate's events arrive in commit order
/// and at most one of them is in flight. (Commit order is id order per aggregate as long as the
/// writers of one aggregate serialise on a lock of it, such as its row's: the caller's
/// contract.)
pub fn claim_due_deliveries(
    conn: &mut PgConnection,
    destination: &str,
    owner: &str,
    limit: u32,
    lease: Duration,
) -> QueryResult<Claim> {
    let token = Uuid::new_v4();
    let deliveries = cached_sql(CLAIM_DUE_DELIVERIES)
        .bind::<Text, _>(destination)
        .bind::<BigInt, _>(i64::from(limit))
        .bind::<Text, _>(owner)
        .bind::<SqlUuid, _>(token)
        .bind::<Double, _>(lease.as_secs_f64())
        .load(conn)?;
    Ok(Claim {
        destination: destination.to_owned(),
        token,
        deliveries,
    })
}

/// The acknowledgement; `$1` destination, `$2` outbox ids, `$3` lease token. The delivery rows
/// go (only where our lease still holds: a relay that stalled past its lease cannot acknowledge
/// a delivery someone else now owns), and each event's count of deliveries still owed drops by
/// one; the acknowledgement that takes it to zero stamps `outbox.sent_at`. Public so tests can
/// EXPLAIN it.
pub const ACKNOWLEDGE: &str = "WITH acked AS ( \
             DELETE FROM outbox_deliveries d \
             WHERE d.destination = $1 AND d.outbox_id = ANY($2) \
               AND d.lease_token = $3 AND d.status = 'pending' \
             RETURNING d.outbox_id), \
         counted AS ( \
             UPDATE outbox o \
             SET pending_deliveries = o.pending_deliveries - 1, \
                 sent_at = CASE WHEN o.pending_deliveries = 1 THEN now() ELSE o.sent_at END \
             WHERE o.id = ANY(ARRAY(SELECT outbox_id FROM acked))) \
         SELECT outbox_id FROM acked";

/// Acknowledges delivered rows of `claim` (see [`ACKNOWLEDGE`]). Two destinations acknowledging
/// one event at the same moment serialise on the event's row, and the second sees the first's
/// decrement, so the event is stamped sent exactly when its last delivery is acknowledged.
/// Returns the ids acknowledged.
pub fn acknowledge(
    conn: &mut PgConnection,
    claim: &Claim,
    outbox_ids: &[i64],
) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Acked {
        #[diesel(sql_type = BigInt)]
        outbox_id: i64,
    }
    if outbox_ids.is_empty() {
        return Ok(Vec::new());
    }
    let acked = cached_sql(ACKNOWLEDGE)
        .bind::<Text, _>(&claim.destination)
        .bind::<Array<BigInt>, _>(outbox_ids)
        .bind::<SqlUuid, _>(claim.token)
        .load::<Acked>(conn)?;
    Ok(acked.into_iter().map(|row| row.outbox_id).collect())
}

/// A failed delivery and when to try it again.
#[derive(Debug, Clone)]
pub struct Failure {
    pub outbox_id: i64,
    pub retry_in: Duration,
    pub error: String,
    /// The receiver refused the event itself (a 4xx other than 408/409/429); such a delivery
    /// is parked as dead once it has used up its attempts. Transient failures retry forever.
    pub permanent: bool,
}

/// Reschedules failed deliveries (still fenced by our lease); permanently refused ones that
/// used up `max_attempts` become `dead`. Returns how many went dead.
pub fn record_failures(
    conn: &mut PgConnection,
    claim: &Claim,
    failures: &[Failure],
    max_attempts: i32,
) -> QueryResult<usize> {
    if failures.is_empty() {
        return Ok(0);
    }
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Bool)]
        dead: bool,
    }
    let ids: Vec<i64> = failures.iter().map(|f| f.outbox_id).collect();
    let delays: Vec<f64> = failures.iter().map(|f| f.retry_in.as_secs_f64()).collect();
    let errors: Vec<String> = failures.iter().map(|f| truncate(&f.error, 500)).collect();
    let permanent: Vec<bool> = failures.iter().map(|f| f.permanent).collect();
    let outcomes: Vec<Outcome> = cached_sql(
        "UPDATE outbox_deliveries d \
         SET status = CASE WHEN f.permanent AND d.attempts >= $5 THEN 'dead' ELSE 'pending' END, \
             next_attempt_at = now() + make_interval(secs => f.delay), \
             last_error = f.error, \
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
         FROM unnest($2::bigint[], $3::float8[], $4::text[], $6::bool[]) AS f(outbox_id, delay, error, permanent) \
         WHERE d.destination = $1 AND d.outbox_id = f.outbox_id AND d.lease_token = $7 AND d.status = 'pending' \
         RETURNING d.status = 'dead' AS dead",
    )
    .bind::<Text, _>(&claim.destination)
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Double>, _>(&delays)
    .bind::<Array<Text>, _>(&errors)
    .bind::<Integer, _>(max_attempts)
    .bind::<Array<Bool>, _>(&permanent)
    .bind::<SqlUuid, _>(claim.token)
    .load(conn)?;
    Ok(outcomes.iter().filter(|o| o.dead).count())
}

/// Gives back a claim's undelivered rows (on shutdown) so another relay can take them at once;
/// the attempt they were claimed for did not happen.
pub fn release(conn: &mut PgConnection, claim: &Claim, outbox_ids: &[i64]) -> QueryResult<usize> {
    cached_sql(
        "UPDATE outbox_deliveries \
         SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, attempts = attempts - 1 \
         WHERE destination = $1 AND outbox_id = ANY($2) AND lease_token = $3 AND status = 'pending'",
    )
    .bind::<Text, _>(&claim.destination)
    .bind::<Array<BigInt>, _>(outbox_ids)
    .bind::<SqlUuid, _>(claim.token)
    .execute(conn)
}

/// Deletes events sent longer than `retention` ago, a bounded chunk per statement so no
/// long lock is held. Dead and pending events are never touched.
pub fn delete_sent_events(conn: &mut PgConnection, retention: Duration) -> QueryResult<usize> {
    const CHUNK: i64 = 5_000;
    let mut total = 0;
    loop {
        // An event is sent after it is created, so the `created_at` index finds the old ones
        // without an index on `sent_at`, which would make every acknowledgement's stamp a
        // non-HOT update.
        let deleted = cached_sql(
            "DELETE FROM outbox WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE created_at < now() - make_interval(secs => $1) \
                   AND sent_at < now() - make_interval(secs => $1) \
                 LIMIT $2)",
        )
        .bind::<Double, _>(retention.as_secs_f64())
        .bind::<BigInt, _>(CHUNK)
        .execute(conn)?;
        total += deleted;
        if deleted < CHUNK as usize {
            return Ok(total);
        }
    }
}

/// Refreshes `outbox_deliveries`' planner statistics when they say far fewer rows than the
/// table holds: autovacuum usually analyzes it while nothing is owed, and a burst arriving
/// after that is claimed with plans made for an empty table (see `claim_due_deliveries.sql`).
/// Returns whether it analyzed. The live count comes from the statistics collector, a second
/// or so behind the inserts.
pub fn refresh_stale_statistics(conn: &mut PgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Stale {
        #[diesel(sql_type = Bool)]
        stale: bool,
    }
    let Stale { stale } = cached_sql(
        "SELECT coalesce(s.n_live_tup > $1 AND s.n_live_tup > 4 * greatest(c.reltuples, 0), false) AS stale \
         FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
         WHERE c.oid = 'outbox_deliveries'::regclass",
    )
    .bind::<BigInt, _>(STALE_STATISTICS_ROWS)
    .get_result(conn)?;
    if stale {
        diesel::sql_query("ANALYZE outbox_deliveries").execute(conn)?;
    }
    Ok(stale)
}

/// Below this many owed deliveries any plan is quick enough.
const STALE_STATISTICS_ROWS: i64 = 1_000;

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
