//! `concert-bench hot-seat`: every client asks for one of a few seats at the same instant.
//! Exactly one hold per seat must win, everyone else must get a clean 409, and nothing may
//! fail with a 5xx; the run fails (non-zero exit) otherwise.

use crate::api_client::{ApiClient, BenchUser};
use crate::api_process::{ApiProcess, ApiSettings};
use crate::bench_db::{scalar, BenchDb};
use crate::stats::{ms, show, Summary};
use crate::BenchResult;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

const SEAT_PRICE: i64 = 100;

#[derive(Debug, Clone, clap::Args)]
pub struct HotSeatArgs {
    /// Clients racing, each a user of its own.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Seats of the one schedule they race for (1..=1000); client i wants seat i % seats.
    #[arg(long, default_value_t = 50)]
    pub seats: usize,
    #[command(flatten)]
    pub api: ApiSettings,
}

#[derive(Debug, Serialize)]
pub struct HotSeatReport {
    pub clients: usize,
    pub seats: usize,
    pub sold_out_ms: Option<f64>,
    pub all_answered_ms: f64,
    pub hold: Option<Summary>,
    pub winners: usize,
    pub seats_won: usize,
    pub losers_by_status: BTreeMap<u16, u64>,
    pub server_errors: u64,
    pub transport_errors: u64,
    pub seats_with_two_live_holds: i64,
    pub failures: Vec<String>,
}

impl HotSeatReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One client's race: when its answer came, how long it took, what it was.
struct Attempt {
    seat_id: i64,
    answered_at: Instant,
    latency: Duration,
    outcome: Result<u16, String>,
}

pub async fn run(server_url: &str, args: &HotSeatArgs) -> BenchResult<HotSeatReport> {
    if args.seats == 0 || args.seats > 1000 {
        return Err("--seats must be between 1 and 1000 (one schedule)".into());
    }
    let db = BenchDb::create(server_url)?;
    let api = ApiProcess::spawn(&db.url, &args.api).await?;
    let client = ApiClient::new(&api.base_url, args.clients)?;
    let seats = client
        .create_seats(&api.admin_token, args.seats, SEAT_PRICE)
        .await?;
    let users = client
        .create_users(args.clients, 10 * SEAT_PRICE, 100)
        .await?;
    println!(
        "hot-seat: database {}, concert-api pid {}; {} clients racing for {} seats",
        db.name(),
        api.pid(),
        args.clients,
        seats.len()
    );
    let (started, attempts) = race(&client, &users, &seats).await?;
    let mut conn = db.connect()?;
    let doubled = scalar(
        &mut conn,
        "SELECT count(*) FROM (SELECT seat_id FROM reservations \
         WHERE status IN ('held', 'confirmed') GROUP BY seat_id HAVING count(*) > 1) AS doubled",
    )?;
    api.stop().await?;
    Ok(report(args, started, attempts, doubled))
}

/// Every client opens its connection, waits at the barrier, then holds its seat at once.
async fn race(
    client: &ApiClient,
    users: &[BenchUser],
    seats: &[i64],
) -> BenchResult<(Instant, Vec<Attempt>)> {
    let barrier = Arc::new(Barrier::new(users.len() + 1));
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let seat_id = seats.get(i % seats.len()).copied().unwrap_or_default();
            let (client, token, barrier) = (client.clone(), user.token.clone(), barrier.clone());
            tokio::spawn(async move {
                let warmed = client.warm_up().await;
                barrier.wait().await;
                warmed?;
                let sent = Instant::now();
                let outcome = client
                    .hold(&token, seat_id)
                    .await
                    .map(|answer| answer.status.as_u16())
                    .map_err(|e| e.to_string());
                Ok::<_, crate::BenchError>(Attempt {
                    seat_id,
                    answered_at: Instant::now(),
                    latency: sent.elapsed(),
                    outcome,
                })
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut attempts = Vec::with_capacity(tasks.len());
    for task in tasks {
        attempts.push(task.await??);
    }
    Ok((started, attempts))
}

fn report(
    args: &HotSeatArgs,
    started: Instant,
    attempts: Vec<Attempt>,
    doubled: i64,
) -> HotSeatReport {
    let won: Vec<&Attempt> = attempts.iter().filter(|a| a.outcome == Ok(201)).collect();
    let seats_won: HashSet<i64> = won.iter().map(|a| a.seat_id).collect();
    let mut losers_by_status = BTreeMap::new();
    let (mut server_errors, mut transport_errors) = (0, 0);
    for attempt in &attempts {
        match attempt.outcome {
            Ok(201) => {}
            Ok(status) => {
                *losers_by_status.entry(status).or_insert(0) += 1;
                server_errors += u64::from(status >= 500);
            }
            Err(_) => transport_errors += 1,
        }
    }
    let last = |set: &mut dyn Iterator<Item = &Attempt>| {
        set.map(|a| a.answered_at.saturating_duration_since(started))
            .max()
    };
    let mut report = HotSeatReport {
        clients: args.clients,
        seats: args.seats,
        sold_out_ms: last(&mut won.iter().copied()).map(ms),
        all_answered_ms: last(&mut attempts.iter()).map_or(0.0, ms),
        hold: Summary::of(attempts.iter().map(|a| a.latency).collect()),
        winners: won.len(),
        seats_won: seats_won.len(),
        losers_by_status,
        server_errors,
        transport_errors,
        seats_with_two_live_holds: doubled,
        failures: Vec::new(),
    };
    report.failures = checks(&report);
    report
}

fn checks(report: &HotSeatReport) -> Vec<String> {
    let expected_losers = report.clients.saturating_sub(report.seats) as u64;
    let conflicts = report.losers_by_status.get(&409).copied().unwrap_or(0);
    [
        (
            report.winners == report.seats,
            format!("{} winners, expected {}", report.winners, report.seats),
        ),
        (
            report.seats_won == report.seats,
            format!(
                "{} distinct seats won, expected {}",
                report.seats_won, report.seats
            ),
        ),
        (
            report.server_errors == 0,
            format!("{} answers were 5xx", report.server_errors),
        ),
        (
            report.transport_errors == 0,
            format!("{} requests got no answer", report.transport_errors),
        ),
        (
            conflicts == expected_losers,
            format!("{conflicts} losers got 409, expected {expected_losers}"),
        ),
        (
            report.seats_with_two_live_holds == 0,
            format!(
                "{} seats have two live holds",
                report.seats_with_two_live_holds
            ),
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, failure)| failure)
    .collect()
}

impl fmt::Display for HotSeatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== hot seat: {} clients, {} seats, all at once ==",
            self.clients, self.seats
        )?;
        let sold_out = self
            .sold_out_ms
            .map_or("never".to_owned(), |v| format!("{v:.1} ms"));
        writeln!(
            f,
            "sold out after {sold_out}; every client answered after {:.1} ms",
            self.all_answered_ms
        )?;
        writeln!(f, "POST /reservations {}", show(&self.hold))?;
        let losers: Vec<String> = self
            .losers_by_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(
            f,
            "winners {} (distinct seats {}); losers by status: {}; 5xx {}; no answer {}; seats with two live holds {}",
            self.winners,
            self.seats_won,
            if losers.is_empty() { "none".to_owned() } else { losers.join(", ") },
            self.server_errors,
            self.transport_errors,
            self.seats_with_two_live_holds
        )?;
        match self.failures.as_slice() {
            [] => writeln!(f, "checks: PASSED"),
            failures => writeln!(f, "checks: FAILED: {}", failures.join("; ")),
        }
    }
}
