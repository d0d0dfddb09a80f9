//! `concert-bench relay`: how fast the relay drains a backlog (one POST per event, then
//! batched), against the same HTTP work without a database; then commit-to-delivery latency
//! under a steady payment load (see `latency.rs`).

use crate::bench_db::{scalar, BenchDb};
use crate::http_baseline::{self, BaselineRun};
use crate::latency::{self, LatencyArgs, LatencyReport};
use crate::platform::MockPlatform;
use crate::stats::per_second;
use crate::BenchResult;
use concert_outbox::db::DbPool;
use concert_outbox::outbox::RelaySettings;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use pg_outbox::relay::config::DEFAULT_BATCH_SIZE;
use pg_outbox::relay::Relay;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SINGLE_TARGET: f64 = 10_000.0;
const BATCHED_TARGET: f64 = 30_000.0;
/// How often the drain is checked; small next to a drain of seconds, large enough that the
/// check does not steal noticeable CPU from the relay on a 2-core machine.
const DRAIN_POLL: Duration = Duration::from_millis(25);
/// Each drain phase's events get aggregate ids from `phase * AGGREGATE_BLOCK`, so phases never
/// share an aggregate (which would make the relay hold events back for ordering).
const AGGREGATE_BLOCK: i64 = 1_000_000_000;

#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Pending events per drain phase.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// RELAY_BATCH_SIZE: rows claimed per round and the largest batch POSTed.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: u32,
    /// RELAY_CONCURRENCY: POSTs in flight at once in single mode.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// RELAY_WORKERS: claim loops per destination.
    #[arg(long, default_value_t = 2)]
    pub workers: u32,
    /// Where the backlog drains: the data platform over HTTP, or a JetStream stream on a
    /// private nats-server.
    #[arg(long, value_enum, default_value_t = DrainTo::Http)]
    pub destination: DrainTo,
    #[command(flatten)]
    pub latency: LatencyArgs,
    /// Skip the latency part (drain only).
    #[arg(long)]
    pub no_latency: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrainTo {
    Http,
    Jetstream,
}

#[derive(Debug, Serialize)]
pub struct RelayReport {
    pub events: usize,
    pub batch_size: u32,
    pub concurrency: usize,
    pub workers: u32,
    pub single: DrainRun,
    pub batched: DrainRun,
    pub baseline_single: BaselineRun,
    pub baseline_batched: BaselineRun,
    /// Batches at `concurrency` in flight: what a relay with pipelined claims could reach.
    pub baseline_batched_concurrent: BaselineRun,
    pub latency: Vec<LatencyReport>,
}

#[derive(Debug, Serialize)]
pub struct DrainRun {
    pub mode: &'static str,
    pub insert_seconds: f64,
    pub drain_seconds: f64,
    pub events_per_second: f64,
    pub received: usize,
    pub missing: usize,
    pub duplicates: u64,
    pub exactly_once: bool,
}

pub async fn run(server_url: &str, args: &RelayArgs) -> BenchResult<RelayReport> {
    let db = BenchDb::create(server_url)?;
    let pool = db.pool(4)?;
    with_db(&pool, |conn| {
        diesel::sql_query("DELETE FROM outbox_destinations WHERE name <> 'data_platform'")
            .execute(conn)
    })
    .await?;
    println!(
        "relay drain: database {}, {} events per phase",
        db.name(),
        args.events
    );
    let single = drain_phase(&db, &pool, args, false, 1).await?;
    println!("  single:  {:.0} events/s", single.events_per_second);
    let batched = drain_phase(&db, &pool, args, true, 2).await?;
    println!("  batched: {:.0} events/s", batched.events_per_second);
    drop(pool);
    drop(db);
    let events = http_baseline::sample_events(args.events);
    let per_batch = args.batch_size as usize;
    let baseline_single = http_baseline::run(&events, 1, args.concurrency).await?;
    let baseline_batched = http_baseline::run(&events, per_batch, 1).await?;
    let baseline_batched_concurrent =
        http_baseline::run(&events, per_batch, args.concurrency).await?;
    let mut latency = Vec::new();
    if !args.no_latency {
        for listen in [true, false] {
            let receiver = latency::Receiver::Http;
            latency.push(latency::run(server_url, &args.latency, listen, &receiver).await?);
        }
    }
    Ok(RelayReport {
        events: args.events,
        batch_size: args.batch_size,
        concurrency: args.concurrency,
        workers: args.workers,
        single,
        batched,
        baseline_single,
        baseline_batched,
        baseline_batched_concurrent,
        latency,
    })
}

/// Inserts a fresh backlog, runs a relay until the outbox has no unsent event, and checks that
/// the platform got each event exactly once.
async fn drain_phase(
    db: &BenchDb,
    pool: &DbPool,
    args: &RelayArgs,
    batch: bool,
    phase: i64,
) -> BenchResult<DrainRun> {
    let first_aggregate = phase * AGGREGATE_BLOCK;
    let count = i64::try_from(args.events)?;
    let inserting = Instant::now();
    with_db(pool, move |conn| {
        insert_pending_events(conn, first_aggregate, count)
    })
    .await?;
    // Autovacuum would analyze a backlog this size within a minute. Without statistics the
    // planner acknowledges through the partial `due` index, filtering the whole backlog on
    // every round, and the drain would measure that instead of the relay.
    with_db(pool, |conn| {
        diesel::sql_query("ANALYZE outbox, outbox_deliveries").execute(conn)
    })
    .await?;
    let insert_seconds = inserting.elapsed().as_secs_f64();
    let platform = MockPlatform::start()?;
    let relay = data_platform_relay(db, &platform.url, args, batch).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let drained = wait_until_drained(pool, &running, drain_deadline(args.events)).await;
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await??;
    drained?;
    let expected = with_db(pool, move |conn| {
        phase_event_ids(conn, first_aggregate, count)
    })
    .await?;
    let received = platform.received().await?;
    platform.stop().await;
    Ok(DrainRun {
        mode: if batch { "batched" } else { "single" },
        insert_seconds,
        drain_seconds: elapsed.as_secs_f64(),
        events_per_second: per_second(args.events, elapsed),
        received: received.stored,
        missing: received.missing_from(&expected),
        duplicates: received.duplicates,
        exactly_once: received.is_exactly(&expected),
    })
}

/// `count` pending events in one statement. The fan-out trigger stays on, so each gets its
/// `data_platform` delivery exactly as a payment's event would. The payload has the shape of a
/// real `reservation.confirmed` event, so the HTTP work matches production's.
pub fn insert_pending_events(
    conn: &mut PgConnection,
    first: i64,
    count: i64,
) -> QueryResult<usize> {
    // OFFSET 0 keeps the subquery from being flattened, so gen_random_uuid() runs once per
    // row and the payload's event_id is the row's event_id.
    diesel::sql_query(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload) \
         SELECT g.event_id, 'reservation', $1 + g.n, 'reservation.confirmed', \
                jsonb_build_object('event_id', g.event_id, 'event_type', 'reservation.confirmed', \
                    'occurred_at', now(), 'reservation_id', $1 + g.n, 'user_id', g.n % 1000 + 1, \
                    'seat_id', g.n + 1, 'seat_no', g.n % 1000 + 1, 'schedule_id', g.n / 1000 + 1, \
                    'concert_id', 1, 'amount', 1000, 'paid_at', now()) \
         FROM (SELECT gen_random_uuid() AS event_id, n \
               FROM generate_series(0, $2 - 1) AS n OFFSET 0) AS g",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(count)
    .execute(conn)
}

fn phase_event_ids(
    conn: &mut PgConnection,
    first: i64,
    count: i64,
) -> QueryResult<HashSet<String>> {
    #[derive(QueryableByName)]
    struct EventId {
        #[diesel(sql_type = Text)]
        event_id: String,
    }
    let rows: Vec<EventId> = diesel::sql_query(
        "SELECT event_id::text AS event_id FROM outbox \
         WHERE aggregate_id >= $1 AND aggregate_id < $1 + $2",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(count)
    .load(conn)?;
    Ok(rows.into_iter().map(|row| row.event_id).collect())
}

/// A relay configured as production would be, minus the `notification` destination: this
/// phase measures delivery to the data platform alone.
async fn data_platform_relay(
    db: &BenchDb,
    platform_url: &str,
    args: &RelayArgs,
    batch: bool,
) -> BenchResult<Relay> {
    let settings = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("DATA_PLATFORM_URL", platform_url.to_owned()),
        ("RELAY_BATCH_SIZE", args.batch_size.to_string()),
        ("RELAY_CONCURRENCY", args.concurrency.to_string()),
        ("DATA_PLATFORM_BATCH", batch.to_string()),
        ("RELAY_WORKERS", args.workers.to_string()),
    ]);
    let mut settings = RelaySettings::from_lookup(|name| settings.get(name).cloned())?;
    // Without this the relay would register `notification` again at start-up.
    settings.endpoints.retain(|d| d.name == "data_platform");
    // The pool `outbox-relay` builds.
    Ok(settings.start_relay(settings.build_pool()?).await?)
}

/// Generous: a relay slower than 500 events/s fails the phase rather than hanging the bench.
pub fn drain_deadline(events: usize) -> Duration {
    Duration::from_secs(60).max(Duration::from_millis(events as u64 * 2))
}

/// Polls until no delivery is owed (acknowledged deliveries are deleted). The newest delivery
/// is looked up from the top of the primary key: the relay claims oldest first, so while it
/// drains, the first entry read is live, and the poll never walks the rows already deleted
/// (a sequential scan would, 40 times a second, taking CPU from the relay it measures).
pub async fn wait_until_drained(
    pool: &DbPool,
    relay: &tokio::task::JoinHandle<Result<(), pg_outbox::relay::RelayError>>,
    within: Duration,
) -> BenchResult<()> {
    let deadline = Instant::now() + within;
    loop {
        let unsent = with_db(pool, |conn| {
            scalar(
                conn,
                "SELECT count(*) FROM (SELECT 1 FROM outbox_deliveries \
                 ORDER BY outbox_id DESC LIMIT 1) AS newest",
            )
        })
        .await?;
        if unsent == 0 {
            return Ok(());
        }
        if relay.is_finished() {
            return Err("the relay stopped before the outbox was drained".into());
        }
        if Instant::now() > deadline {
            return Err(format!("the outbox was not drained within {within:?}").into());
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Runs one unit of database work with a pooled connection, off the async workers.
pub async fn with_db<T, F>(pool: &DbPool, work: F) -> BenchResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        Ok(work(&mut conn)?)
    })
    .await?
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== relay drain: {} pending events per phase ==",
            self.events
        )?;
        writeln!(
            f,
            "destinations: data_platform only (the 'notification' row was deleted and the relay \
             configured without it); RELAY_BATCH_SIZE={} RELAY_CONCURRENCY={} RELAY_WORKERS={}",
            self.batch_size, self.concurrency, self.workers
        )?;
        let rows = [
            (&self.single, &self.baseline_single, SINGLE_TARGET),
            (&self.batched, &self.baseline_batched, BATCHED_TARGET),
        ];
        for (run, baseline, target) in rows {
            writeln!(
                f,
                "{run}  [target >= {target:.0}/s: {}]",
                verdict(run.events_per_second >= target)
            )?;
            writeln!(
                f,
                "    baseline without the database: {baseline}; relay/baseline = {:.2}",
                run.events_per_second / baseline.events_per_second.max(f64::MIN_POSITIVE)
            )?;
        }
        writeln!(
            f,
            "    (batched baseline has one batch in flight, like the relay's destination loop; \
             with {} batches in flight: {})",
            self.concurrency, self.baseline_batched_concurrent
        )?;
        for latency in &self.latency {
            write!(f, "{latency}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DrainRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:>9.0} events/s (drained in {:.2} s; backlog inserted in {:.2} s); platform \
             got {} events, {} missing, {} duplicates: {}",
            self.mode,
            self.events_per_second,
            self.drain_seconds,
            self.insert_seconds,
            self.received,
            self.missing,
            self.duplicates,
            if self.exactly_once {
                "exactly once"
            } else {
                "NOT exactly once"
            }
        )
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
