//! Commit-to-delivery latency: real payments at a steady rate while an in-process relay (with
//! production's default settings) delivers their events to the mock platform; then the
//! distribution of `outbox.sent_at - outbox.created_at`.
//!
//! `created_at` is the payment transaction's start and `sent_at` the start of the statement
//! that acknowledged the event's last delivery (the relay runs both destinations, the data
//! platform and the notifier, as `RELAY_IN_PROCESS` does), so that figure includes the payment
//! itself. The commit-to-delivery figure the target applies to starts instead when the payment
//! call returned, just after its commit: still an upper bound on commit-to-delivery, without
//! the payment's own time in it.

use crate::bench_db::{scalar, BenchDb};
use crate::platform::MockPlatform;
use crate::relay::{verdict, with_db};
use crate::stats::{per_second, show, Summary};
use crate::BenchResult;
use chrono::{DateTime, Utc};
use concert_outbox::concerts::{create_concert, NewSchedule};
use concert_outbox::db::DbPool;
use concert_outbox::domain::{ChargeAmount, ConcertTitle, EntityId, Price, SeatCount, UserName};
use concert_outbox::outbox::RelaySettings;
use concert_outbox::payments::pay_for_reservation;
use concert_outbox::points::charge_points;
use concert_outbox::reservations::hold_seat;
use concert_outbox::users::create_user;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use pg_outbox::jetstream::JetStreamConfig;
use pg_outbox::waker::RelayWaker;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const P99_TARGET_MS: f64 = 50.0;
const PAYERS: usize = 32;
const SEAT_PRICE: i64 = 100;
const HOLD_TTL: Duration = Duration::from_secs(300);
/// Connections for the payment load, like the API's default pool.
const LOAD_POOL_SIZE: u32 = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// Payments per second during the latency runs.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long each latency run pays at that rate.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub mode: &'static str,
    pub payments_ok: usize,
    pub payments_failed: usize,
    pub first_failure: Option<String>,
    pub achieved_rate: f64,
    pub payment: Option<Summary>,
    /// Events every destination acknowledged.
    pub delivered: usize,
    /// From each payment's transaction start (`outbox.created_at`) to its last acknowledgement.
    pub from_transaction_start: Option<Summary>,
    /// From each payment call's return (after its commit) to its last acknowledgement.
    pub commit_to_delivery: Option<Summary>,
    pub listen: bool,
}

/// Where the latency runs' events go.
pub enum Receiver {
    /// Both HTTP destinations, the data platform and the notifier (the mock platform).
    Http,
    /// The JetStream stream alone: the figure is commit-to-PubAck.
    JetStream(JetStreamConfig),
}

/// One latency run on a database of its own; `listen` false leaves the relay to its poll.
pub async fn run(
    server_url: &str,
    args: &LatencyArgs,
    listen: bool,
    receiver: &Receiver,
) -> BenchResult<LatencyReport> {
    let db = BenchDb::create(server_url)?;
    let pool = db.pool(LOAD_POOL_SIZE)?;
    let payments = (args.rate as usize) * (args.seconds as usize);
    let seed = seed_catalog(&pool, payments).await?;
    let platform = MockPlatform::start()?;
    let mut settings = default_relay_settings(&db, &platform.url, listen)?;
    if let Receiver::JetStream(jetstream) = receiver {
        with_db(&pool, |conn| {
            diesel::sql_query("DELETE FROM outbox_destinations").execute(conn)
        })
        .await?;
        settings.endpoints.clear();
        settings.jetstream = Some(jetstream.clone());
    }
    let relay = settings.start_relay(settings.build_pool()?).await?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    if listen {
        wait_for_listener(&pool).await?;
    }
    let load = pay_steadily(&pool, &seed, args.rate, payments).await;
    let delivered = wait_for_deliveries(&pool).await;
    shutdown.cancel();
    running.await??;
    platform.stop().await;
    delivered?;
    let sent = with_db(&pool, sent_events).await?;
    // A wait that came out negative (delivered before the payment's caller saw its answer, or
    // clock rounding) counts as no wait.
    let wait = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).to_std().unwrap_or_default();
    let from_transaction_start =
        Summary::of(sent.iter().map(|e| wait(e.created_at, e.sent_at)).collect());
    let commit_to_delivery = Summary::of(
        sent.iter()
            .filter_map(|e| Some(wait(*load.returned_at.get(&e.aggregate_id)?, e.sent_at)))
            .collect(),
    );
    Ok(LatencyReport {
        mode: match (listen, receiver) {
            (true, Receiver::Http) => "LISTEN/NOTIFY",
            (false, Receiver::Http) => "polling only (RELAY_LISTEN=false, 500 ms)",
            (true, Receiver::JetStream(_)) => "LISTEN/NOTIFY, JetStream only (commit to PubAck)",
            (false, Receiver::JetStream(_)) => "polling only, JetStream only",
        },
        payments_ok: load.latencies.len(),
        payments_failed: load.failed,
        first_failure: load.first_failure,
        achieved_rate: per_second(load.latencies.len(), load.elapsed),
        payment: Summary::of(load.latencies),
        delivered: sent.len(),
        from_transaction_start,
        commit_to_delivery,
        listen,
    })
}

struct Seed {
    seat_ids: Vec<i64>,
    user_ids: Vec<i64>,
}

/// A concert with enough 1000-seat schedules for every payment, and payers with points.
async fn seed_catalog(pool: &DbPool, payments: usize) -> BenchResult<Seed> {
    let schedules = payments.div_ceil(1000).max(1);
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || -> BenchResult<Seed> {
        let mut conn = pool.get()?;
        let plan = (0..schedules)
            .map(|day| {
                Ok(NewSchedule {
                    starts_at: chrono::Utc::now() + chrono::Duration::days(day as i64 + 1),
                    seat_count: SeatCount::try_from(1000)?,
                    price: Price::try_from(SEAT_PRICE)?,
                })
            })
            .collect::<BenchResult<Vec<_>>>()?;
        let title = ConcertTitle::try_from("latency bench".to_owned())?;
        create_concert(&mut conn, &title, &plan)?;
        let mut user_ids = Vec::with_capacity(PAYERS);
        for n in 0..PAYERS {
            let user = create_user(&mut conn, &UserName::try_from(format!("payer {n}"))?)?;
            charge_points(
                &mut conn,
                user.id,
                ChargeAmount::try_from(ChargeAmount::MAX)?,
            )?;
            user_ids.push(user.id);
        }
        let seat_ids = seat_ids(&mut conn)?;
        Ok(Seed { seat_ids, user_ids })
    })
    .await?
}

fn seat_ids(conn: &mut PgConnection) -> QueryResult<Vec<i64>> {
    use concert_outbox::db::schema::seats;
    seats::table.select(seats::id).order(seats::id).load(conn)
}

/// A relay exactly as `RELAY_IN_PROCESS` would run it: both destinations, default settings.
fn default_relay_settings(
    db: &BenchDb,
    platform_url: &str,
    listen: bool,
) -> BenchResult<RelaySettings> {
    let settings = HashMap::from([
        ("DATABASE_URL", db.url.clone()),
        ("DATA_PLATFORM_URL", platform_url.to_owned()),
        ("RELAY_LISTEN", listen.to_string()),
    ]);
    Ok(RelaySettings::from_lookup(|name| {
        settings.get(name).cloned()
    })?)
}

/// Payments made before the relay listens would wait for a poll and skew the figures.
async fn wait_for_listener(pool: &DbPool) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let listening = with_db(pool, |conn| {
            scalar(
                conn,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query = 'LISTEN outbox_events'",
            )
        })
        .await?;
        if listening > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the relay's listener did not start within 10 s".into())
}

struct Load {
    latencies: Vec<Duration>,
    /// Reservation id -> when its payment call returned.
    returned_at: HashMap<i64, DateTime<Utc>>,
    failed: usize,
    first_failure: Option<String>,
    elapsed: Duration,
}

/// Starts one hold + payment every 1/rate seconds, each on a pooled connection of its own.
async fn pay_steadily(pool: &DbPool, seed: &Seed, rate: u32, payments: usize) -> Load {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut running = JoinSet::new();
    // As the API does: relays are woken from a background task after each commit.
    let waker = RelayWaker::spawn(pool.clone());
    let started = Instant::now();
    for (n, &seat_id) in seed.seat_ids.iter().take(payments).enumerate() {
        ticker.tick().await;
        let user_id = seed.user_ids.get(n % PAYERS).copied().unwrap_or_default();
        let (pool, waker) = (pool.clone(), waker.clone());
        running.spawn_blocking(move || hold_and_pay(&pool, &waker, user_id, seat_id));
    }
    let mut load = Load {
        latencies: Vec::with_capacity(payments),
        returned_at: HashMap::with_capacity(payments),
        failed: 0,
        first_failure: None,
        elapsed: Duration::ZERO,
    };
    while let Some(done) = running.join_next().await {
        match done
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok(paid) => {
                load.latencies.push(paid.elapsed);
                load.returned_at
                    .insert(paid.reservation_id, paid.returned_at);
            }
            Err(error) => {
                load.failed += 1;
                load.first_failure.get_or_insert(error);
            }
        }
    }
    load.elapsed = started.elapsed();
    load
}

/// One hold and payment: how long both took, and when the payment call returned.
struct Paid {
    elapsed: Duration,
    reservation_id: i64,
    returned_at: DateTime<Utc>,
}

/// The service's two use cases back to back, each its own transaction, then the wake-up.
fn hold_and_pay(
    pool: &DbPool,
    waker: &RelayWaker,
    user_id: i64,
    seat_id: i64,
) -> BenchResult<Paid> {
    let started = Instant::now();
    let mut conn = pool.get()?;
    let held = hold_seat(
        &mut conn,
        user_id,
        EntityId::parse("seat_id", seat_id)?,
        HOLD_TTL,
    )?;
    let reservation = EntityId::parse("reservation_id", held.id)?;
    pay_for_reservation(&mut conn, user_id, reservation, None, None)?;
    let returned_at = Utc::now();
    waker.wake();
    Ok(Paid {
        elapsed: started.elapsed(),
        reservation_id: held.id,
        returned_at,
    })
}

async fn wait_for_deliveries(pool: &DbPool) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = with_db(pool, |conn| {
            scalar(conn, "SELECT count(*) FROM outbox_deliveries")
        })
        .await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{pending} deliveries still pending after 30 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An event every destination acknowledged.
#[derive(QueryableByName)]
struct SentEvent {
    #[diesel(sql_type = BigInt)]
    aggregate_id: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    sent_at: DateTime<Utc>,
}

fn sent_events(conn: &mut PgConnection) -> QueryResult<Vec<SentEvent>> {
    diesel::sql_query(
        "SELECT aggregate_id, created_at, sent_at FROM outbox WHERE sent_at IS NOT NULL",
    )
    .load(conn)
}

impl fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== commit-to-delivery, {} ==", self.mode)?;
        writeln!(
            f,
            "payments: {} ok, {} failed{} at {:.0}/s; hold+pay {}",
            self.payments_ok,
            self.payments_failed,
            self.first_failure
                .as_ref()
                .map_or(String::new(), |e| format!(" (first: {e})")),
            self.achieved_rate,
            show(&self.payment)
        )?;
        writeln!(
            f,
            "events delivered to every destination: {}; transaction start (created_at) -> sent_at {}",
            self.delivered,
            show(&self.from_transaction_start)
        )?;
        write!(
            f,
            "commit (the payment call's return) -> sent_at {}",
            show(&self.commit_to_delivery)
        )?;
        if self.listen {
            let met = self
                .commit_to_delivery
                .as_ref()
                .is_some_and(|c| c.p99_ms <= P99_TARGET_MS);
            write!(
                f,
                "  [target p99 <= {P99_TARGET_MS:.0} ms: {}]",
                verdict(met)
            )?;
        } else {
            write!(f, "  (baseline for comparison)")?;
        }
        writeln!(f)
    }
}
