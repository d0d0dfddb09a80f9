//! One phase of the queue bench: `clients` tasks each take the next user, join, poll until
//! admitted and leave at once so the next in line gets in, until every user has had a turn;
//! meanwhile a sampler reads the queue's size straight from Redis to see the active set stay
//! within the limit.

use crate::queue_line::{Failure, Line, QueueUser};
use crate::stats::{per_second, Summary};
use concert_outbox::queue::{Queue, TokenStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

/// How often the sampler reads the queue's size: often enough to catch a brief excess over
/// the limit, rarely enough (one cheap script per read) not to load Redis.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long a phase may take before the clients give up: a queue that stops admitting must end
/// the run with a failed check, not hang it.
const PHASE_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Serialize)]
pub struct PhaseRun {
    pub phase: &'static str,
    pub seconds: f64,
    pub admitted: usize,
    pub admitted_per_second: f64,
    pub joins: usize,
    pub joins_per_second: f64,
    pub polls: usize,
    pub polls_per_second: f64,
    pub join: Option<Summary>,
    pub poll: Option<Summary>,
    pub leave: Option<Summary>,
    /// Users who saw `active` exactly once / never / more than once.
    pub users_admitted_once: usize,
    pub users_never_admitted: usize,
    pub users_admitted_again: usize,
    /// Admissions as Redis's scripts counted them (filled in by the caller).
    pub admissions_recorded: Option<u64>,
    /// Calls that did not answer as a live queue does, by kind.
    pub failures: BTreeMap<String, u64>,
    pub first_failure: Option<String>,
    pub sampled: Sampled,
}

/// The queue's size as the sampler saw it during the phase, and once after it.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Sampled {
    pub samples: u64,
    pub max_active: u64,
    pub max_waiting: u64,
    pub failed_reads: u64,
    pub active_after: Option<u64>,
    pub waiting_after: Option<u64>,
}

/// Runs every user through `line` with `clients` tasks; `sampler` reads the same queue.
pub async fn run(
    line: Line,
    users: Arc<Vec<QueueUser>>,
    clients: usize,
    poll_interval: Duration,
    sampler: Arc<Queue>,
) -> Result<PhaseRun, tokio::task::JoinError> {
    let stop_sampling = CancellationToken::new();
    let sampling = tokio::spawn(sample(sampler.clone(), stop_sampling.clone()));
    let next = Arc::new(AtomicUsize::new(0));
    let clients = clients.max(1);
    // Every client has its connection before the clock starts.
    let ready = Arc::new(Barrier::new(clients + 1));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (line, users, next, ready) =
                (line.clone(), users.clone(), next.clone(), ready.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                if let Err(failure) = line.warm_up().await {
                    tally.failed(failure);
                }
                ready.wait().await;
                let pace = Pace {
                    poll_interval,
                    deadline: Instant::now() + PHASE_DEADLINE,
                };
                take_turns(&line, &users, &next, pace, tally).await
            })
        })
        .collect();
    ready.wait().await;
    let started = Instant::now();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    let elapsed = started.elapsed();
    stop_sampling.cancel();
    let mut sampled = sampling.await?;
    if let Ok(after) = sampler.counts().await {
        sampled.active_after = Some(after.active);
        sampled.waiting_after = Some(after.waiting);
    }
    Ok(total.into_run(line.name(), users.len(), elapsed, sampled))
}

/// How often a client polls, and when it stops.
#[derive(Clone, Copy)]
struct Pace {
    poll_interval: Duration,
    deadline: Instant,
}

/// What one client task saw.
#[derive(Default)]
struct Tally {
    join: Vec<Duration>,
    poll: Vec<Duration>,
    leave: Vec<Duration>,
    /// Index of the user behind every `active` this task saw.
    admitted: Vec<usize>,
    failures: BTreeMap<String, u64>,
    first_failure: Option<String>,
}

/// Takes the next user until none is left: join, poll until active, leave; adds to `tally`.
async fn take_turns(
    line: &Line,
    users: &[QueueUser],
    next: &AtomicUsize,
    pace: Pace,
    mut tally: Tally,
) -> Tally {
    while Instant::now() < pace.deadline {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(user) = users.get(index) else {
            return tally;
        };
        let call = Instant::now();
        let joined = line.join(user).await;
        tally.join.push(call.elapsed());
        let (token, status) = match joined {
            Ok(answer) => answer,
            Err(failure) => {
                tally.failed(failure);
                continue;
            }
        };
        match wait_for_turn(line, user, token, status, pace, &mut tally).await {
            Ok(()) => tally.admitted.push(index),
            Err(failure) => tally.failed(failure),
        }
        // Left after a failure too, so a lost user does not hold a slot for its whole turn.
        let call = Instant::now();
        let left = line.leave(user, token).await;
        tally.leave.push(call.elapsed());
        if let Err(failure) = left {
            tally.failed(failure);
        }
    }
    tally
}

/// Polls until `active`; a place lost (`expired`) or the deadline ends the wait as a failure.
async fn wait_for_turn(
    line: &Line,
    user: &QueueUser,
    token: uuid::Uuid,
    mut status: TokenStatus,
    pace: Pace,
    tally: &mut Tally,
) -> Result<(), Failure> {
    loop {
        match status {
            TokenStatus::Active => return Ok(()),
            TokenStatus::Expired => {
                return Err(Failure {
                    kind: "expired while waiting".into(),
                    detail: format!("user {} lost their place", user.id),
                })
            }
            TokenStatus::Waiting if Instant::now() >= pace.deadline => {
                return Err(Failure {
                    kind: "not admitted in time".into(),
                    detail: format!("user {} still waiting after {PHASE_DEADLINE:?}", user.id),
                })
            }
            TokenStatus::Waiting => {}
        }
        if !pace.poll_interval.is_zero() {
            tokio::time::sleep(pace.poll_interval).await;
        }
        let call = Instant::now();
        let polled = line.poll(user, token).await;
        tally.poll.push(call.elapsed());
        status = match polled {
            Ok(status) => status,
            // One failed poll keeps the place; the next poll may answer.
            Err(failure) => {
                tally.failed(failure);
                TokenStatus::Waiting
            }
        };
    }
}

impl Tally {
    fn failed(&mut self, failure: Failure) {
        *self.failures.entry(failure.kind.clone()).or_insert(0) += 1;
        self.first_failure
            .get_or_insert_with(|| format!("{}: {}", failure.kind, failure.detail));
    }

    fn merge(&mut self, other: Tally) {
        self.join.extend(other.join);
        self.poll.extend(other.poll);
        self.leave.extend(other.leave);
        self.admitted.extend(other.admitted);
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_insert(0) += n;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    fn into_run(
        self,
        phase: &'static str,
        users: usize,
        elapsed: Duration,
        sampled: Sampled,
    ) -> PhaseRun {
        let mut turns = vec![0u32; users];
        for index in &self.admitted {
            if let Some(n) = turns.get_mut(*index) {
                *n += 1;
            }
        }
        let (joins, polls) = (self.join.len(), self.poll.len());
        PhaseRun {
            phase,
            seconds: elapsed.as_secs_f64(),
            admitted: self.admitted.len(),
            admitted_per_second: per_second(self.admitted.len(), elapsed),
            joins,
            joins_per_second: per_second(joins, elapsed),
            polls,
            polls_per_second: per_second(polls, elapsed),
            join: Summary::of(self.join),
            poll: Summary::of(self.poll),
            leave: Summary::of(self.leave),
            users_admitted_once: turns.iter().filter(|&&n| n == 1).count(),
            users_never_admitted: turns.iter().filter(|&&n| n == 0).count(),
            users_admitted_again: turns.iter().filter(|&&n| n > 1).count(),
            admissions_recorded: None,
            failures: self.failures,
            first_failure: self.first_failure,
            sampled,
        }
    }
}

/// Reads waiting and active together (one script, so never a torn pair) until `stop`.
async fn sample(queue: Arc<Queue>, stop: CancellationToken) -> Sampled {
    let mut sampled = Sampled::default();
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return sampled,
            _ = every.tick() => {}
        }
        match queue.counts().await {
            Ok(counts) => {
                sampled.samples += 1;
                sampled.max_active = sampled.max_active.max(counts.active);
                sampled.max_waiting = sampled.max_waiting.max(counts.waiting);
            }
            Err(_) => sampled.failed_reads += 1,
        }
    }
}
