//! The flows baseline: the service's own use cases for one hold and one payment, called
//! straight on a connection. One OS thread with its own connection per client, each doing what
//! the service does per request: authenticate (one query), then the use case (`SeatHolds::hold`
//! with the service's taken-seats memory, then `pay_and_wake_relays`, one statement for a
//! payable reservation). No HTTP, no pool, no thread hand-offs, no hold permits (each thread
//! has its connection, so there is nothing to queue for), and no relay wake-ups
//! ([`NoWakeUps`]): the service sends those from a background task, a few per burst of
//! payments; leaving them out makes the baseline do a little less than the service, so the
//! service/baseline ratio errs low.

use crate::api_client::BenchUser;
use crate::stats::{per_second, show, Summary};
use crate::BenchResult;
use concert_outbox::domain::EntityId;
use concert_outbox::payments::pay_and_wake_relays;
use concert_outbox::reservations::SeatHolds;
use concert_outbox::users::find_user_by_token;
use diesel::prelude::*;
use pg_outbox::waker::NoWakeUps;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The API's default `HOLD_TTL_SECONDS`.
const HOLD_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize)]
pub struct SqlBaseline {
    pub threads: usize,
    pub flows: usize,
    pub seconds: f64,
    pub flows_per_second: f64,
    /// Authentication + hold, as one request of the service would run them.
    pub hold: Option<Summary>,
    /// Authentication + payment transaction.
    pub pay: Option<Summary>,
    pub errors: BTreeMap<String, u64>,
    pub ran_out_of_seats: bool,
}

#[derive(Default)]
struct Worker {
    flows: usize,
    hold: Vec<Duration>,
    pay: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    ran_out_of_seats: bool,
}

/// Runs one thread per user for `duration`, all starting together on fresh `seats`.
pub fn run(
    database_url: &str,
    users: &[BenchUser],
    seats: Vec<i64>,
    duration: Duration,
) -> BenchResult<SqlBaseline> {
    // Connect first, so connection set-up is not part of the measured time.
    let connections = users
        .iter()
        .map(|_| PgConnection::establish(database_url))
        .collect::<Result<Vec<_>, _>>()?;
    let seats = Arc::new(seats);
    let holds = Arc::new(SeatHolds::new(users.len().max(1), HOLD_TTL));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(users.len() + 1));
    let threads: Vec<_> = users
        .iter()
        .zip(connections)
        .map(|(user, conn)| {
            let (token, holds, seats, next, start) = (
                user.token.clone(),
                holds.clone(),
                seats.clone(),
                next.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + duration;
                buy_until(conn, &token, &holds, &seats, &next, deadline)
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let mut total = Worker::default();
    for thread in threads {
        let worker = thread.join().map_err(|_| "a baseline thread panicked")?;
        total.merge(worker);
    }
    let elapsed = started.elapsed();
    Ok(SqlBaseline {
        threads: users.len(),
        flows: total.flows,
        seconds: elapsed.as_secs_f64(),
        flows_per_second: per_second(total.flows, elapsed),
        hold: Summary::of(total.hold),
        pay: Summary::of(total.pay),
        errors: total.errors,
        ran_out_of_seats: total.ran_out_of_seats,
    })
}

fn buy_until(
    mut conn: PgConnection,
    token: &str,
    holds: &SeatHolds,
    seats: &[i64],
    next: &AtomicUsize,
    deadline: Instant,
) -> Worker {
    let mut worker = Worker::default();
    // The service looks a token up once and then remembers it (`auth_cache`); so does this.
    let user_id = match authenticate(&mut conn, token) {
        Ok(id) => id,
        Err(error) => {
            worker.failed("auth", error);
            return worker;
        }
    };
    while Instant::now() < deadline {
        let Some(&seat_id) = seats.get(next.fetch_add(1, Ordering::Relaxed)) else {
            worker.ran_out_of_seats = true;
            break;
        };
        let call = Instant::now();
        let reservation_id = match hold_as_the_service_does(&mut conn, holds, user_id, seat_id) {
            Ok(id) => id,
            Err(error) => {
                worker.failed("hold", error);
                continue;
            }
        };
        worker.hold.push(call.elapsed());
        let call = Instant::now();
        match pay_as_the_service_does(&mut conn, user_id, reservation_id) {
            Ok(()) => {
                worker.pay.push(call.elapsed());
                worker.flows += 1;
            }
            Err(error) => worker.failed("pay", error),
        }
    }
    worker
}

fn authenticate(conn: &mut PgConnection, token: &str) -> BenchResult<i64> {
    Ok(find_user_by_token(conn, token)?.ok_or("unknown token")?)
}

fn hold_as_the_service_does(
    conn: &mut PgConnection,
    holds: &SeatHolds,
    user_id: i64,
    seat_id: i64,
) -> BenchResult<i64> {
    let seat = EntityId::parse("seat_id", seat_id)?;
    let admitted = holds.admit_unqueued(seat)?;
    Ok(holds.hold(conn, admitted, user_id)?.id)
}

fn pay_as_the_service_does(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: i64,
) -> BenchResult<()> {
    let reservation = EntityId::parse("reservation_id", reservation_id)?;
    pay_and_wake_relays(conn, &NoWakeUps, user_id, reservation, None, None)?;
    Ok(())
}

impl Worker {
    fn failed(&mut self, call: &str, error: crate::BenchError) {
        *self.errors.entry(format!("{call}: {error}")).or_insert(0) += 1;
    }

    fn merge(&mut self, other: Worker) {
        self.flows += other.flows;
        self.hold.extend(other.hold);
        self.pay.extend(other.pay);
        for (error, n) in other.errors {
            *self.errors.entry(error).or_insert(0) += n;
        }
        self.ran_out_of_seats |= other.ran_out_of_seats;
    }
}

impl fmt::Display for SqlBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:.0} flows/s ({} flows in {:.2} s, {} threads each with its own PgConnection)",
            self.flows_per_second, self.flows, self.seconds, self.threads
        )?;
        writeln!(f, "  SeatHolds::hold               {}", show(&self.hold))?;
        writeln!(f, "  pay_and_wake_relays           {}", show(&self.pay))?;
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(e, n)| format!("{e}: {n}"))
            .collect();
        write!(
            f,
            "  errors: {}{}",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            },
            if self.ran_out_of_seats {
                "; RAN OUT OF SEATS (raise --seats-per-phase)"
            } else {
                ""
            }
        )
    }
}
