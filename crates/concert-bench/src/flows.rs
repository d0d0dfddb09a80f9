//! `concert-bench flows`: many keep-alive clients each buying seat after seat (hold, then pay)
//! through the real `concert-api`, against the same SQL issued straight to Postgres at the
//! same concurrency (see `sql_baseline.rs`). service/baseline is the headline: how much of the
//! database's capacity the HTTP service delivers.

use crate::api_client::{ApiClient, BenchUser};
use crate::api_process::{built_at, ApiProcess, ApiSettings, Memory};
use crate::bench_db::BenchDb;
use crate::observe::{Observation, Observer};
use crate::sql_baseline::{self, SqlBaseline};
use crate::stats::{per_second, show, Summary};
use crate::topologies::Topology;
use crate::BenchResult;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEAT_PRICE: i64 = 100;
/// Enough for any run: 10,000,000 points pay for 100,000 seats per user.
const POINTS_PER_USER: i64 = 10_000_000;

#[derive(Debug, Clone, clap::Args)]
pub struct FlowsArgs {
    /// Concurrent clients (and users, one each).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// How long each phase (service, then baseline) runs.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Fresh seats created for each phase [default: 5000 per second of run].
    #[arg(long)]
    pub seats_per_phase: Option<usize>,
    /// monolith: concert-api against the same SQL straight to Postgres; split: the split
    /// (over HTTP, then over JetStream) against the monolith, in the same run.
    #[arg(long, value_enum, default_value_t)]
    pub topology: Topology,
    #[command(flatten)]
    pub api: ApiSettings,
}

#[derive(Debug, Serialize)]
pub struct FlowsReport {
    pub clients: usize,
    pub seconds: u64,
    pub api_binary: String,
    pub api_built_at: String,
    pub service: ServiceRun,
    pub service_observed: Observation,
    pub memory: Memory,
    pub baseline: SqlBaseline,
    pub baseline_observed: Observation,
    pub ratio: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct ServiceRun {
    pub flows: usize,
    pub seconds: f64,
    pub flows_per_second: f64,
    pub hold: Option<Summary>,
    pub pay: Option<Summary>,
    /// `"hold 409"`-style keys: every answer that was not a 2xx, by call and status.
    pub non_2xx: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub first_transport_error: Option<String>,
    pub ran_out_of_seats: bool,
}

pub async fn run(server_url: &str, args: &FlowsArgs) -> BenchResult<FlowsReport> {
    let db = BenchDb::create(server_url)?;
    let api = ApiProcess::spawn(&db.url, &args.api).await?;
    let client = ApiClient::new(&api.base_url, args.clients)?;
    let seats_per_phase = args.seats_per_phase.unwrap_or(args.seconds as usize * 5000);
    println!(
        "flows: database {}, concert-api pid {}; creating {} users and 2 x {seats_per_phase} seats",
        db.name(),
        api.pid(),
        args.clients
    );
    let users = client
        .create_users(args.clients, POINTS_PER_USER, 32)
        .await?;
    let service_seats = client
        .create_seats(&api.admin_token, seats_per_phase, SEAT_PRICE)
        .await?;
    let baseline_seats = client
        .create_seats(&api.admin_token, seats_per_phase, SEAT_PRICE)
        .await?;
    println!(
        "  service phase: {} clients for {} s",
        args.clients, args.seconds
    );
    let observer = Observer::start(&db.url, api.pid())?;
    let service = run_service_phase(&client, &users, service_seats, args.seconds).await?;
    let service_observed = observer.finish()?;
    let memory = api.memory()?;
    let (api_binary, api_built_at) = (api.binary.display().to_string(), built_at(&api.binary));
    // Stopped before the baseline, so the idle API takes nothing from it.
    api.stop().await?;
    println!(
        "  baseline phase: {} threads for {} s",
        args.clients, args.seconds
    );
    let observer = Observer::start(&db.url, 0)?;
    let (url, seconds) = (db.url.clone(), Duration::from_secs(args.seconds));
    let baseline = tokio::task::spawn_blocking(move || {
        sql_baseline::run(&url, &users, baseline_seats, seconds)
    })
    .await??;
    let baseline_observed = observer.finish()?;
    Ok(FlowsReport {
        clients: args.clients,
        seconds: args.seconds,
        api_binary,
        api_built_at,
        ratio: service.flows_per_second / baseline.flows_per_second.max(f64::MIN_POSITIVE),
        service,
        service_observed,
        memory,
        baseline,
        baseline_observed,
    })
}

/// One task per user, each buying the next free seat until time is up.
async fn run_service_phase(
    client: &ApiClient,
    users: &[BenchUser],
    seats: Vec<i64>,
    seconds: u64,
) -> BenchResult<ServiceRun> {
    let seats = Arc::new(seats);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (client, token) = (client.clone(), user.token.clone());
            let (seats, next) = (seats.clone(), next.clone());
            tokio::spawn(async move { buy_until(&client, &token, &seats, &next, deadline).await })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    Ok(total.into_run(started.elapsed()))
}

#[derive(Default)]
struct Tally {
    flows: usize,
    hold: Vec<Duration>,
    pay: Vec<Duration>,
    non_2xx: BTreeMap<String, u64>,
    transport_errors: u64,
    first_transport_error: Option<String>,
    ran_out_of_seats: bool,
}

async fn buy_until(
    client: &ApiClient,
    token: &str,
    seats: &[i64],
    next: &AtomicUsize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let Some(&seat_id) = seats.get(next.fetch_add(1, Ordering::Relaxed)) else {
            tally.ran_out_of_seats = true;
            break;
        };
        let call = Instant::now();
        let held = match client.hold(token, seat_id).await {
            Ok(answer) => answer,
            Err(error) => {
                tally.transport_error(error.to_string());
                continue;
            }
        };
        tally.hold.push(call.elapsed());
        let Some(reservation_id) = held.reservation_id else {
            tally.refused("hold", held.status);
            continue;
        };
        let call = Instant::now();
        match client.pay(token, reservation_id).await {
            Ok(status) if status.is_success() => {
                tally.pay.push(call.elapsed());
                tally.flows += 1;
            }
            Ok(status) => {
                tally.pay.push(call.elapsed());
                tally.refused("pay", status);
            }
            Err(error) => tally.transport_error(error.to_string()),
        }
    }
    tally
}

impl Tally {
    fn refused(&mut self, call: &str, status: reqwest::StatusCode) {
        *self
            .non_2xx
            .entry(format!("{call} {}", status.as_u16()))
            .or_insert(0) += 1;
    }

    fn transport_error(&mut self, error: String) {
        self.transport_errors += 1;
        self.first_transport_error.get_or_insert(error);
    }

    fn merge(&mut self, other: Tally) {
        self.flows += other.flows;
        self.hold.extend(other.hold);
        self.pay.extend(other.pay);
        for (key, n) in other.non_2xx {
            *self.non_2xx.entry(key).or_insert(0) += n;
        }
        self.transport_errors += other.transport_errors;
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
        self.ran_out_of_seats |= other.ran_out_of_seats;
    }

    fn into_run(self, elapsed: Duration) -> ServiceRun {
        ServiceRun {
            flows: self.flows,
            seconds: elapsed.as_secs_f64(),
            flows_per_second: per_second(self.flows, elapsed),
            hold: Summary::of(self.hold),
            pay: Summary::of(self.pay),
            non_2xx: self.non_2xx,
            transport_errors: self.transport_errors,
            first_transport_error: self.first_transport_error,
            ran_out_of_seats: self.ran_out_of_seats,
        }
    }
}

impl fmt::Display for FlowsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== flows: {} clients x {} s, hold + pay per flow ==",
            self.clients, self.seconds
        )?;
        writeln!(
            f,
            "concert-api: {} (built {})",
            self.api_binary, self.api_built_at
        )?;
        let s = &self.service;
        writeln!(
            f,
            "service:  {:.0} flows/s ({} flows in {:.2} s)",
            s.flows_per_second, s.flows, s.seconds
        )?;
        writeln!(f, "  POST /reservations          {}", show(&s.hold))?;
        writeln!(f, "  POST /reservations/{{id}}/payment {}", show(&s.pay))?;
        let errors: Vec<String> = s.non_2xx.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        writeln!(
            f,
            "  non-2xx: {}; transport errors: {}{}{}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            },
            s.transport_errors,
            s.first_transport_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (first: {e})")),
            if s.ran_out_of_seats {
                "; RAN OUT OF SEATS (raise --seats-per-phase)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  concert-api RSS: peak {:.1} MiB, at the end {:.1} MiB",
            self.memory.peak_rss_mib, self.memory.rss_mib
        )?;
        writeln!(f, "  {}", indented(&self.service_observed))?;
        writeln!(f, "baseline: {}", self.baseline)?;
        writeln!(f, "  {}", indented(&self.baseline_observed))?;
        writeln!(f, "service/baseline = {:.2}", self.ratio)
    }
}

fn indented(observed: &Observation) -> String {
    observed.to_string().trim_end().replace('\n', "\n  ")
}
