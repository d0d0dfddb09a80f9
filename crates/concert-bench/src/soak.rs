//! `concert-bench soak`: a long steady stream of events through the relay on a private
//! PostgreSQL with its default settings (autovacuum on; the shared development server runs with
//! it off), sampling the sizes of `outbox` and `outbox_deliveries` before, during and after, so
//! the tables' bloat is a number. Events are inserted at a fixed rate, each insert followed by
//! the NOTIFY a payment sends, and delivered, batched, to the mock data platform by an
//! in-process relay with production's defaults (retention 7 days, so `outbox` keeps every event
//! of the run; `outbox_deliveries` keeps only what is owed).

use crate::bench_db::{scalar, BenchDb};
use crate::platform::MockPlatform;
use crate::relay::{insert_pending_events, with_db};
use crate::BenchResult;
use concert_outbox::db::DbPool;
use concert_outbox::embedded_postgres::EmbeddedPostgres;
use concert_outbox::outbox::RelaySettings;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Inserts per second are spread over this many statements.
const INSERTS_PER_SECOND: u32 = 10;
/// How long to wait after the drain for autovacuum to visit the tables (its naptime is 60 s).
const AUTOVACUUM_WAIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Events to push through the relay.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events inserted per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u32,
    /// Seconds between samples while events flow.
    #[arg(long, default_value_t = 15)]
    pub sample_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub events: u64,
    pub rate: u32,
    pub autovacuum: String,
    pub samples: Vec<Sample>,
}

/// The tables at one moment.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub phase: &'static str,
    pub seconds: f64,
    pub inserted: u64,
    /// Deliveries still owed (rows in `outbox_deliveries`).
    pub owed: i64,
    pub outbox: TableSize,
    pub deliveries: TableSize,
}

#[derive(Debug, Serialize, QueryableByName)]
pub struct TableSize {
    /// The table's heap, in bytes.
    #[diesel(sql_type = BigInt)]
    pub heap_bytes: i64,
    /// Its indexes, in bytes.
    #[diesel(sql_type = BigInt)]
    pub index_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub live_rows: i64,
    #[diesel(sql_type = BigInt)]
    pub dead_rows: i64,
    #[diesel(sql_type = BigInt)]
    pub autovacuums: i64,
}

pub async fn run(args: &SoakArgs) -> BenchResult<SoakReport> {
    let root = std::env::temp_dir().join(format!(
        "concert-bench-soak-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let postgres =
        tokio::task::spawn_blocking(move || EmbeddedPostgres::start_throwaway(&root)).await??;
    let db = BenchDb::create(&postgres.url("postgres"))?;
    let pool = db.pool(4)?;
    let autovacuum = with_db(&pool, |conn| show(conn, "autovacuum")).await?;
    println!(
        "soak: private PostgreSQL (autovacuum {autovacuum}), {} events at {}/s",
        args.events, args.rate
    );
    with_db(&pool, |conn| {
        diesel::sql_query("DELETE FROM outbox_destinations WHERE name <> 'data_platform'")
            .execute(conn)
    })
    .await?;
    let platform = MockPlatform::start()?;
    let env = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("DATA_PLATFORM_URL", platform.url.clone()),
    ]);
    let mut settings = RelaySettings::from_lookup(|name| env.get(name).cloned())?;
    settings.endpoints.retain(|d| d.name == "data_platform");
    let relay = settings.start_relay(settings.build_pool()?).await?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let started = Instant::now();
    let mut samples = vec![sample(&pool, "before", started, 0).await?];
    let inserted = produce(&pool, args, started, &mut samples).await?;
    samples.push(sample(&pool, "inserts done", started, inserted).await?);
    wait_for(&pool, Duration::from_secs(600), |owed, _| owed == 0).await?;
    samples.push(sample(&pool, "drained", started, inserted).await?);
    let vacuumed_before = samples.last().map_or(0, |s| s.deliveries.autovacuums);
    // Autovacuum visits a table once enough of it is dead; the wait ends at its next visit.
    let visited = wait_for(&pool, AUTOVACUUM_WAIT, |_, vacuums| {
        vacuums > vacuumed_before
    })
    .await;
    let phase = match visited {
        Ok(()) => "after autovacuum",
        Err(_) => "no autovacuum yet",
    };
    samples.push(sample(&pool, phase, started, inserted).await?);
    shutdown.cancel();
    running.await??;
    platform.stop().await;
    drop(pool);
    drop(db);
    drop(postgres);
    Ok(SoakReport {
        events: args.events,
        rate: args.rate,
        autovacuum,
        samples,
    })
}

/// Inserts `args.events` at `args.rate`, sampling every `args.sample_seconds`; returns how
/// many were inserted.
async fn produce(
    pool: &DbPool,
    args: &SoakArgs,
    started: Instant,
    samples: &mut Vec<Sample>,
) -> BenchResult<u64> {
    let per_insert = u64::from((args.rate / INSERTS_PER_SECOND).max(1));
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / INSERTS_PER_SECOND);
    let sample_every = Duration::from_secs(args.sample_seconds.max(1));
    let mut next_sample = started + sample_every;
    let mut inserted = 0;
    while inserted < args.events {
        ticker.tick().await;
        let count = per_insert.min(args.events - inserted);
        let first = i64::try_from(inserted)?;
        let count_sql = i64::try_from(count)?;
        with_db(pool, move |conn| {
            insert_pending_events(conn, first, count_sql)?;
            // As a payment does after its commit.
            pg_outbox::wake_relays(conn);
            Ok(())
        })
        .await?;
        inserted += count;
        if Instant::now() >= next_sample {
            samples.push(sample(pool, "during", started, inserted).await?);
            println!(
                "  {:>6.0} s: {inserted} inserted",
                started.elapsed().as_secs_f64()
            );
            next_sample += sample_every;
        }
    }
    Ok(inserted)
}

async fn sample(
    pool: &DbPool,
    phase: &'static str,
    started: Instant,
    inserted: u64,
) -> BenchResult<Sample> {
    let (owed, outbox, deliveries) = with_db(pool, |conn| {
        Ok((
            scalar(conn, "SELECT count(*) FROM outbox_deliveries")?,
            table_size(conn, "outbox")?,
            table_size(conn, "outbox_deliveries")?,
        ))
    })
    .await?;
    Ok(Sample {
        phase,
        seconds: started.elapsed().as_secs_f64(),
        inserted,
        owed,
        outbox,
        deliveries,
    })
}

fn table_size(conn: &mut PgConnection, table: &str) -> QueryResult<TableSize> {
    diesel::sql_query(
        "SELECT pg_relation_size(relid) AS heap_bytes, pg_indexes_size(relid) AS index_bytes, \
                n_live_tup AS live_rows, n_dead_tup AS dead_rows, autovacuum_count AS autovacuums \
         FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind::<Text, _>(table)
    .get_result(conn)
}

fn show(conn: &mut PgConnection, setting: &str) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    let row: Setting = diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<Text, _>(setting)
        .get_result(conn)?;
    Ok(row.value)
}

/// Polls every second until `done(owed deliveries, autovacuums of outbox_deliveries)`.
async fn wait_for(
    pool: &DbPool,
    within: Duration,
    done: impl Fn(i64, i64) -> bool,
) -> BenchResult<()> {
    let deadline = Instant::now() + within;
    loop {
        let (owed, vacuums) = with_db(pool, |conn| {
            Ok((
                scalar(conn, "SELECT count(*) FROM outbox_deliveries")?,
                table_size(conn, "outbox_deliveries")?.autovacuums,
            ))
        })
        .await?;
        if done(owed, vacuums) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not within {within:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== soak: {} events at {}/s through the relay, private PostgreSQL, autovacuum {} ==",
            self.events, self.rate, self.autovacuum
        )?;
        writeln!(
            f,
            "{:<18} {:>7} {:>9} {:>7} | {:>26} | {:>26}",
            "phase",
            "s",
            "inserted",
            "owed",
            "outbox heap+index MiB (dead)",
            "deliveries heap+index MiB (dead)"
        )?;
        for s in &self.samples {
            writeln!(
                f,
                "{:<18} {:>7.0} {:>9} {:>7} | {:>9.1} + {:>6.1} ({:>8}) | {:>9.2} + {:>6.2} ({:>8})",
                s.phase,
                s.seconds,
                s.inserted,
                s.owed,
                mib(s.outbox.heap_bytes),
                mib(s.outbox.index_bytes),
                s.outbox.dead_rows,
                mib(s.deliveries.heap_bytes),
                mib(s.deliveries.index_bytes),
                s.deliveries.dead_rows
            )?;
        }
        Ok(())
    }
}
