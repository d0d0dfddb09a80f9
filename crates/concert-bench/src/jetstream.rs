//! `concert-bench relay --destination jetstream`: the relay draining a backlog into a
//! file-backed single-node JetStream stream, against the same publishing code with no database
//! (the JetStream destination handed the same events in claims of the same size, as many at a
//! time as the relay has loops, so the same number of PubAcks is in flight); then
//! commit-to-PubAck latency under a steady payment load. The stream lives on a private
//! `nats-server` the bench starts on a free port, with a store folder it deletes.

use crate::bench_db::BenchDb;
use crate::latency::{self, LatencyReport, Receiver};
use crate::nats_server::NatsServer;
use crate::relay::{
    drain_deadline, insert_pending_events, verdict, wait_until_drained, with_db, RelayArgs,
};
use crate::stats::per_second;
use crate::BenchResult;
use concert_outbox::outbox::destinations::{JETSTREAM, SUBJECT_PREFIX};
use concert_outbox::outbox::RelaySettings;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use pg_outbox::jetstream::{JetStreamConfig, JetStreamDestination};
use pg_outbox::relay::store::{Claim, ClaimedDelivery};
use pg_outbox::relay::{Destination, RelayConfig, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const DRAIN_TARGET: f64 = 20_000.0;
const RATIO_TARGET: f64 = 0.5;
/// Aggregate ids of the drained backlog start here (any block would do: one phase).
const FIRST_AGGREGATE: i64 = 1;

#[derive(Debug, Serialize)]
pub struct JetStreamReport {
    pub events: usize,
    pub batch_size: u32,
    pub workers: u32,
    pub drain_seconds: f64,
    pub events_per_second: f64,
    /// Messages in the stream after the drain: one per event when nothing was stored twice.
    pub stored: u64,
    pub baseline_seconds: f64,
    pub baseline_events_per_second: f64,
    pub ratio: f64,
    pub latency: Vec<LatencyReport>,
}

pub async fn run(server_url: &str, args: &RelayArgs) -> BenchResult<JetStreamReport> {
    let nats = NatsServer::start()?;
    let db = BenchDb::create(server_url)?;
    let pool = db.pool(4)?;
    println!(
        "relay drain to JetStream: database {}, nats-server pid {}, {} events",
        db.name(),
        nats.child.id(),
        args.events
    );
    let count = i64::try_from(args.events)?;
    with_db(&pool, move |conn| {
        diesel::sql_query("DELETE FROM outbox_destinations").execute(conn)?;
        diesel::sql_query("INSERT INTO outbox_destinations (name) VALUES ('jetstream')")
            .execute(conn)?;
        insert_pending_events(conn, FIRST_AGGREGATE, count)?;
        diesel::sql_query("ANALYZE outbox, outbox_deliveries").execute(conn)
    })
    .await?;
    // The baseline publishes the very rows the relay will claim.
    let events = with_db(&pool, pending_as_claimed).await?;

    let settings = relay_settings(&db, &nats.url(), args, "BENCH_RELAY")?;
    let relay = settings.start_relay(settings.build_pool()?).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let drained = wait_until_drained(&pool, &running, drain_deadline(args.events)).await;
    let drain = started.elapsed();
    shutdown.cancel();
    running.await??;
    drained?;
    let stored = count_and_delete(&nats.url(), "BENCH_RELAY").await?;
    println!("  relay:    {:.0} events/s", per_second(args.events, drain));

    let baseline = publish_without_database(&nats.url(), &settings.relay, args, events).await?;
    println!(
        "  baseline: {:.0} events/s",
        per_second(args.events, baseline)
    );
    drop(pool);
    drop(db);
    let mut latency = Vec::new();
    if !args.no_latency {
        let receiver = Receiver::JetStream(stream_config(&nats.url(), "BENCH_LATENCY"));
        latency.push(latency::run(server_url, &args.latency, true, &receiver).await?);
    }
    let (events_per_second, baseline_events_per_second) = (
        per_second(args.events, drain),
        per_second(args.events, baseline),
    );
    Ok(JetStreamReport {
        events: args.events,
        batch_size: args.batch_size,
        workers: args.workers,
        drain_seconds: drain.as_secs_f64(),
        events_per_second,
        stored,
        baseline_seconds: baseline.as_secs_f64(),
        baseline_events_per_second,
        ratio: events_per_second / baseline_events_per_second.max(f64::MIN_POSITIVE),
        latency,
    })
}

fn stream_config(nats_url: &str, stream: &str) -> JetStreamConfig {
    JetStreamConfig {
        servers: vec![nats_url.to_owned()],
        stream: stream.to_owned(),
        subject_prefix: SUBJECT_PREFIX.to_owned(),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        event_types: None,
    }
}

/// The relay as `outbox-relay` runs it with `NATS_URL` and the HTTP destinations left out.
fn relay_settings(
    db: &BenchDb,
    nats_url: &str,
    args: &RelayArgs,
    stream: &str,
) -> BenchResult<RelaySettings> {
    let env = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("RELAY_BATCH_SIZE", args.batch_size.to_string()),
        ("RELAY_WORKERS", args.workers.to_string()),
    ]);
    let mut settings = RelaySettings::from_lookup(|name| env.get(name).cloned())?;
    settings.endpoints.clear();
    settings.jetstream = Some(stream_config(nats_url, stream));
    Ok(settings)
}

/// The backlog's rows as the relay's claim reads them.
fn pending_as_claimed(conn: &mut PgConnection) -> QueryResult<Vec<ClaimedDelivery>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        outbox_id: i64,
        #[diesel(sql_type = Integer)]
        attempts: i32,
        #[diesel(sql_type = SqlUuid)]
        event_id: uuid::Uuid,
        #[diesel(sql_type = Text)]
        event_type: String,
        #[diesel(sql_type = BigInt)]
        aggregate_id: i64,
        #[diesel(sql_type = Jsonb)]
        payload: serde_json::Value,
        #[diesel(sql_type = Nullable<Text>)]
        trace_context: Option<String>,
        #[diesel(sql_type = Timestamptz)]
        created_at: chrono::DateTime<chrono::Utc>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id AS outbox_id, 1 AS attempts, event_id, event_type, aggregate_id, payload, \
                trace_context, created_at FROM outbox ORDER BY id",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedDelivery {
            outbox_id: r.outbox_id,
            attempts: r.attempts,
            event_id: r.event_id,
            event_type: r.event_type,
            aggregate_id: r.aggregate_id,
            payload: r.payload,
            trace_context: r.trace_context,
            created_at: r.created_at,
        })
        .collect())
}

/// The JetStream destination itself, handed the events in claims of `batch_size`, `workers`
/// claims at a time (the relay's loops), with no database around it.
async fn publish_without_database(
    nats_url: &str,
    relay: &RelayConfig,
    args: &RelayArgs,
    events: Vec<ClaimedDelivery>,
) -> BenchResult<Duration> {
    let destination = Arc::new(
        JetStreamDestination::connect(JETSTREAM, stream_config(nats_url, "BENCH_BASELINE"), relay)
            .await?,
    );
    let total = events.len();
    let mut claims: Vec<Arc<Claim>> = events
        .chunks(args.batch_size as usize)
        .map(|chunk| {
            Arc::new(Claim {
                destination: JETSTREAM.to_owned(),
                token: uuid::Uuid::new_v4(),
                deliveries: chunk.to_vec(),
            })
        })
        .collect();
    claims.reverse();
    let queue = Arc::new(std::sync::Mutex::new(claims));
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for _ in 0..args.workers {
        let (queue, destination) = (queue.clone(), destination.clone());
        loops.spawn(async move {
            let shutdown = CancellationToken::new();
            let mut delivered = 0;
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let Some(claim) = next else {
                    return delivered;
                };
                let verdicts = destination.deliver(&claim, &shutdown).await;
                delivered += verdicts
                    .iter()
                    .filter(|(_, v)| *v == Verdict::Delivered)
                    .count();
            }
        });
    }
    let mut delivered = 0;
    while let Some(done) = loops.join_next().await {
        delivered += done?;
    }
    let elapsed = started.elapsed();
    if delivered != total {
        return Err(format!("the baseline got {delivered} of {total} PubAcks").into());
    }
    let stored = count_and_delete(nats_url, "BENCH_BASELINE").await?;
    if stored != delivered as u64 {
        return Err(format!("the baseline stream holds {stored} of {delivered} events").into());
    }
    Ok(elapsed)
}

/// How many messages `stream` holds; then deletes it, so the next phase's stream can take
/// the same subjects.
async fn count_and_delete(nats_url: &str, stream: &str) -> BenchResult<u64> {
    let context = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    let messages = context
        .get_stream(stream)
        .await?
        .info()
        .await?
        .state
        .messages;
    context.delete_stream(stream).await?;
    Ok(messages)
}

impl fmt::Display for JetStreamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== relay drain to JetStream: {} pending events, file-backed single-node stream ==",
            self.events
        )?;
        writeln!(
            f,
            "destination: jetstream only; RELAY_BATCH_SIZE={} RELAY_WORKERS={} (so up to {} PubAcks in flight)",
            self.batch_size,
            self.workers,
            self.batch_size * self.workers
        )?;
        writeln!(
            f,
            "relay     {:>9.0} events/s (drained in {:.2} s); stream holds {} messages: {}  [target >= {DRAIN_TARGET:.0}/s: {}]",
            self.events_per_second,
            self.drain_seconds,
            self.stored,
            if self.stored == self.events as u64 { "each event once" } else { "NOT each event once" },
            verdict(self.events_per_second >= DRAIN_TARGET)
        )?;
        writeln!(
            f,
            "baseline  {:>9.0} events/s (the same publishing code and claims, no database; {:.2} s)",
            self.baseline_events_per_second, self.baseline_seconds
        )?;
        writeln!(
            f,
            "relay/baseline = {:.2}  [target >= {RATIO_TARGET}: {}]",
            self.ratio,
            verdict(self.ratio >= RATIO_TARGET)
        )?;
        for latency in &self.latency {
            write!(f, "{latency}")?;
        }
        Ok(())
    }
}
