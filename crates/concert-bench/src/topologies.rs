//! `concert-bench flows --topology split`: the price of the split. The same purchases (hold,
//! then pay) through the monolith (`concert-api`, its relay in process) and through the split
//! (`reservation-svc` and `payment-svc`, each on a database of its own), over HTTP and over
//! JetStream (a private `nats-server`), one after the other in the same run, each on fresh
//! databases of the same server and delivering to the same mock data platform. For each: the
//! confirmed purchases per second, and the time from the payment call to `confirmed` (the
//! 200's answer, or the first poll of `GET /reservations/{id}` to show `confirmed` after a
//! 202), with split/monolith as ratios.

use crate::api_client::{ApiClient, BenchUser};
use crate::api_process::{free_port, ApiProcess};
use crate::bench_db::BenchDb;
use crate::flows::FlowsArgs;
use crate::nats_server::NatsServer;
use crate::platform::MockPlatform;
use crate::stats::{per_second, show, Summary};
use crate::BenchResult;
use reqwest::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEAT_PRICE: i64 = 100;
const POINTS_PER_USER: i64 = 10_000_000;
/// How often a client asks after a payment answered 202.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// A saga still pending after this is counted as stuck, not waited for.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// How long the platform may take to receive the last confirmations of a phase.
const PLATFORM_CATCH_UP: Duration = Duration::from_secs(60);

/// Which shape of the product `flows` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Topology {
    /// concert-api against the same SQL straight to Postgres.
    #[default]
    Monolith,
    /// The split (over HTTP and over JetStream) against the monolith, in the same run.
    Split,
}

#[derive(Debug, Serialize)]
pub struct TopologyReport {
    pub clients: usize,
    pub seconds: u64,
    pub runs: Vec<TopologyRun>,
}

#[derive(Debug, Serialize)]
pub struct TopologyRun {
    pub topology: &'static str,
    pub confirmed: usize,
    pub seconds: f64,
    pub flows_per_second: f64,
    /// From the payment call to `confirmed`.
    pub to_confirmed: Option<Summary>,
    /// Payments answered 202 `payment_pending`.
    pub pending: usize,
    /// `"pay 409"` or `"ended payment_failed"`-style keys: every purchase that did not confirm.
    pub not_confirmed: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub first_transport_error: Option<String>,
    pub ran_out_of_seats: bool,
    /// `reservation.confirmed` events the mock platform received for this phase.
    pub platform_received: usize,
    /// This run's flows per second and latencies over the monolith's.
    pub against_monolith: Option<Ratios>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    pub flows_per_second: f64,
    pub p50: f64,
    pub p99: f64,
}

pub async fn run(server_url: &str, args: &FlowsArgs) -> BenchResult<TopologyReport> {
    let platform = MockPlatform::start()?;
    let nats = NatsServer::start()?;
    let phases: [(&'static str, Option<String>); 3] = [
        ("monolith", None),
        ("split over HTTP", None),
        ("split over JetStream", Some(nats.url())),
    ];
    let mut runs: Vec<TopologyRun> = Vec::new();
    for (n, (topology, nats_url)) in phases.into_iter().enumerate() {
        let services = if n == 0 {
            Services::monolith(server_url, &platform.url).await?
        } else {
            Services::split(server_url, &platform.url, nats_url).await?
        };
        println!(
            "  {topology}: {} clients for {} s",
            args.clients, args.seconds
        );
        let mut run = measure(topology, &services, &platform, args).await?;
        services.stop().await?;
        run.against_monolith = runs.first().map(|monolith| Ratios::of(&run, monolith));
        runs.push(run);
    }
    platform.stop().await;
    Ok(TopologyReport {
        clients: args.clients,
        seconds: args.seconds,
        runs,
    })
}

/// The processes of one phase and their databases (dropped after the processes stop).
struct Services {
    api: ApiProcess,
    payment: Option<ApiProcess>,
    _databases: Vec<BenchDb>,
}

impl Services {
    async fn monolith(server_url: &str, platform: &str) -> BenchResult<Services> {
        let db = BenchDb::create(server_url)?;
        let api = ApiProcess::spawn_with(
            &db.url,
            &Default::default(),
            &[
                ("RELAY_IN_PROCESS", "true".into()),
                ("DATA_PLATFORM_URL", platform.into()),
            ],
        )
        .await?;
        Ok(Services {
            api,
            payment: None,
            _databases: vec![db],
        })
    }

    async fn split(
        server_url: &str,
        platform: &str,
        nats_url: Option<String>,
    ) -> BenchResult<Services> {
        let (reservation_db, payment_db) = (
            BenchDb::create_empty(server_url)?,
            BenchDb::create_empty(server_url)?,
        );
        let (reservation_port, payment_port) = (free_port()?, free_port()?);
        let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let mut shared: Vec<(&str, String)> =
            nats_url.map(|url| ("NATS_URL", url)).into_iter().collect();
        shared.push((
            "INTERNAL_TOKEN",
            format!("internal-{}", uuid::Uuid::new_v4().simple()),
        ));
        let mut payment_env = vec![
            ("DATABASE_URL", payment_db.url.clone()),
            (
                "RESERVATION_SVC_URL",
                format!("http://127.0.0.1:{reservation_port}"),
            ),
        ];
        payment_env.extend(shared.iter().cloned());
        let payment =
            ApiProcess::spawn_binary("payment-svc", payment_port, &token, &payment_env).await?;
        let mut reservation_env = vec![
            ("DATABASE_URL", reservation_db.url.clone()),
            (
                "PAYMENT_SVC_URL",
                format!("http://127.0.0.1:{payment_port}"),
            ),
            ("DATA_PLATFORM_URL", platform.into()),
        ];
        reservation_env.extend(shared);
        let api = ApiProcess::spawn_binary(
            "reservation-svc",
            reservation_port,
            &token,
            &reservation_env,
        )
        .await?;
        Ok(Services {
            api,
            payment: Some(payment),
            _databases: vec![reservation_db, payment_db],
        })
    }

    /// SIGTERM to the client-facing service first, then to the payment side.
    async fn stop(self) -> BenchResult<()> {
        self.api.stop().await?;
        if let Some(payment) = self.payment {
            payment.stop().await?;
        }
        Ok(())
    }
}

async fn measure(
    topology: &'static str,
    services: &Services,
    platform: &MockPlatform,
    args: &FlowsArgs,
) -> BenchResult<TopologyRun> {
    let client = ApiClient::new(&services.api.base_url, args.clients)?;
    let users = client
        .create_users(args.clients, POINTS_PER_USER, 32)
        .await?;
    let seats = client
        .create_seats(
            &services.api.admin_token,
            args.seats_per_phase.unwrap_or(args.seconds as usize * 5000),
            SEAT_PRICE,
        )
        .await?;
    let received_before = platform.received().await?.event_ids.len();
    let tally = buy_for(&client, &users, seats, Duration::from_secs(args.seconds)).await?;
    let platform_received = platform_catch_up(platform, received_before, tally.confirmed).await?;
    Ok(tally.into_run(topology, platform_received))
}

/// One task per user, each buying the next free seat until `length` is up; a purchase
/// started before then is followed to its end.
async fn buy_for(
    client: &ApiClient,
    users: &[BenchUser],
    seats: Vec<i64>,
    length: Duration,
) -> BenchResult<Tally> {
    let (seats, next) = (Arc::new(seats), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (client, token) = (client.clone(), user.token.clone());
            let (seats, next) = (seats.clone(), next.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let Some(&seat) = seats.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        tally.ran_out_of_seats = true;
                        break;
                    };
                    tally.buy(&client, &token, seat).await;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Waits until the platform has received `expected` more events than `before`, or until
/// [`PLATFORM_CATCH_UP`]; returns how many it received.
async fn platform_catch_up(
    platform: &MockPlatform,
    before: usize,
    expected: usize,
) -> BenchResult<usize> {
    let deadline = Instant::now() + PLATFORM_CATCH_UP;
    loop {
        let received = platform.received().await?.event_ids.len() - before;
        if received >= expected || Instant::now() > deadline {
            return Ok(received);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Default)]
struct Tally {
    confirmed: usize,
    to_confirmed: Vec<Duration>,
    pending: usize,
    not_confirmed: BTreeMap<String, u64>,
    transport_errors: u64,
    first_transport_error: Option<String>,
    ran_out_of_seats: bool,
    elapsed: Duration,
}

impl Tally {
    /// Holds `seat` and pays for it; after a 202, asks until the saga has ended.
    async fn buy(&mut self, client: &ApiClient, token: &str, seat: i64) {
        let held = match client.hold(token, seat).await {
            Ok(held) => held,
            Err(error) => return self.transport_error(error.to_string()),
        };
        let Some(reservation) = held.reservation_id else {
            return self.not_confirmed(format!("hold {}", held.status.as_u16()));
        };
        let called = Instant::now();
        let status = match client.pay(token, reservation).await {
            Ok(status) => status,
            Err(error) => return self.transport_error(error.to_string()),
        };
        match status {
            StatusCode::OK => self.confirmed(called.elapsed()),
            StatusCode::ACCEPTED => {
                self.pending += 1;
                self.follow(client, token, reservation, called).await;
            }
            other => self.not_confirmed(format!("pay {}", other.as_u16())),
        }
    }

    async fn follow(&mut self, client: &ApiClient, token: &str, reservation: i64, called: Instant) {
        while called.elapsed() < GIVE_UP_AFTER {
            tokio::time::sleep(POLL_EVERY).await;
            match client.reservation_status(token, reservation).await {
                Ok(status) if status == "confirmed" => return self.confirmed(called.elapsed()),
                Ok(status) if status == "payment_pending" => {}
                Ok(status) => return self.not_confirmed(format!("ended {status}")),
                Err(error) => return self.transport_error(error.to_string()),
            }
        }
        self.not_confirmed("still payment_pending".into());
    }

    fn confirmed(&mut self, took: Duration) {
        self.confirmed += 1;
        self.to_confirmed.push(took);
    }

    fn not_confirmed(&mut self, why: String) {
        *self.not_confirmed.entry(why).or_insert(0) += 1;
    }

    fn transport_error(&mut self, error: String) {
        self.transport_errors += 1;
        self.first_transport_error.get_or_insert(error);
    }

    fn merge(&mut self, other: Tally) {
        self.confirmed += other.confirmed;
        self.to_confirmed.extend(other.to_confirmed);
        self.pending += other.pending;
        for (why, n) in other.not_confirmed {
            *self.not_confirmed.entry(why).or_insert(0) += n;
        }
        self.transport_errors += other.transport_errors;
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
        self.ran_out_of_seats |= other.ran_out_of_seats;
    }

    fn into_run(self, topology: &'static str, platform_received: usize) -> TopologyRun {
        TopologyRun {
            topology,
            confirmed: self.confirmed,
            seconds: self.elapsed.as_secs_f64(),
            flows_per_second: per_second(self.confirmed, self.elapsed),
            to_confirmed: Summary::of(self.to_confirmed),
            pending: self.pending,
            not_confirmed: self.not_confirmed,
            transport_errors: self.transport_errors,
            first_transport_error: self.first_transport_error,
            ran_out_of_seats: self.ran_out_of_seats,
            platform_received,
            against_monolith: None,
        }
    }
}

impl Ratios {
    fn of(run: &TopologyRun, monolith: &TopologyRun) -> Ratios {
        let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        let (p50, p99) = match (run.to_confirmed, monolith.to_confirmed) {
            (Some(run), Some(monolith)) => (
                ratio(run.p50_ms, monolith.p50_ms),
                ratio(run.p99_ms, monolith.p99_ms),
            ),
            _ => (f64::NAN, f64::NAN),
        };
        Ratios {
            flows_per_second: ratio(run.flows_per_second, monolith.flows_per_second),
            p50,
            p99,
        }
    }
}

impl fmt::Display for TopologyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== flows by topology: {} clients x {} s each, hold + pay until confirmed ==",
            self.clients, self.seconds
        )?;
        for run in &self.runs {
            writeln!(
                f,
                "{:<21} {:>6.0} flows/s ({} confirmed in {:.2} s; {} answered 202)",
                run.topology, run.flows_per_second, run.confirmed, run.seconds, run.pending
            )?;
            writeln!(
                f,
                "  payment call -> confirmed  {}",
                show(&run.to_confirmed)
            )?;
            let missed: Vec<String> = run
                .not_confirmed
                .iter()
                .map(|(why, n)| format!("{why}: {n}"))
                .collect();
            writeln!(
                f,
                "  not confirmed: {}; transport errors: {}{}{}",
                if missed.is_empty() {
                    "none".to_owned()
                } else {
                    missed.join(", ")
                },
                run.transport_errors,
                run.first_transport_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (first: {e})")),
                if run.ran_out_of_seats {
                    "; RAN OUT OF SEATS (raise --seats-per-phase)"
                } else {
                    ""
                }
            )?;
            writeln!(
                f,
                "  the platform received {} of {} reservation.confirmed",
                run.platform_received, run.confirmed
            )?;
            if let Some(ratios) = run.against_monolith {
                writeln!(
                    f,
                    "  {}/monolith: flows/s {:.2}, p50 {:.2}, p99 {:.2}",
                    run.topology, ratios.flows_per_second, ratios.p50, ratios.p99
                )?;
            }
        }
        Ok(())
    }
}
