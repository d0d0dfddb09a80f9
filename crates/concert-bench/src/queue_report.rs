//! What `concert-bench queue` reports: both phases side by side with their ratios, the checks
//! that fail the run (every user admitted exactly once, the active set within its limit, no
//! failed call) and the targets, which are reported, not enforced.

use crate::api_process::Memory;
use crate::observe::Observation;
use crate::queue::QueueArgs;
use crate::queue_phase::PhaseRun;
use crate::queue_redis::RedisNote;
use crate::stats::{show, Summary};
use serde::Serialize;
use std::fmt;

/// The targets on the 2-core machine.
const RATIO_TARGET: f64 = 0.5;
const P99_TARGET_MS: f64 = 20.0;
/// Redis keeps a second's admission counter 120 s after its last admission, so a longer phase
/// has lost its first counters and its recorded total is not checked.
const COUNTERS_CHECKED_UP_TO_SECONDS: f64 = 110.0;

#[derive(Debug, Serialize)]
pub struct QueueReport {
    pub users: usize,
    pub clients: usize,
    pub active_limit: u32,
    pub poll_interval_ms: u64,
    pub warm_token_cache: bool,
    pub machine: Machine,
    pub redis: RedisNote,
    pub api: ApiBuild,
    pub service: Phase,
    pub baseline: Phase,
    pub ratios: Ratios,
    pub targets: Vec<Target>,
    /// What went wrong; the run fails unless this is empty.
    pub failures: Vec<String>,
}

/// Which `concert-api` was measured, and when it was built.
#[derive(Debug, Serialize)]
pub struct ApiBuild {
    pub binary: String,
    pub built_at: String,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub run: PhaseRun,
    pub observed: Observation,
    pub redis_cpu_percent: Option<f64>,
    pub api_memory: Option<Memory>,
}

/// Service over baseline: above 1 is faster for rates, slower for latencies.
#[derive(Debug, Serialize)]
pub struct Ratios {
    pub admitted_per_second: f64,
    pub joins_per_second: f64,
    pub polls_per_second: f64,
    pub join_p99: Option<f64>,
    pub poll_p99: Option<f64>,
    pub leave_p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: Option<f64>,
    /// `"ms"` for a latency, empty for a ratio.
    pub unit: &'static str,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn this_one() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu: cpuinfo
                .lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_else(|| "unknown CPU".to_owned()),
            memory_gib: kib / 1024.0 / 1024.0,
        }
    }
}

impl QueueReport {
    pub fn new(
        args: &QueueArgs,
        redis: RedisNote,
        machine: Machine,
        api: ApiBuild,
        service: Phase,
        baseline: Phase,
    ) -> QueueReport {
        let (s, b) = (&service.run, &baseline.run);
        let ratios = Ratios {
            admitted_per_second: ratio(s.admitted_per_second, b.admitted_per_second),
            joins_per_second: ratio(s.joins_per_second, b.joins_per_second),
            polls_per_second: ratio(s.polls_per_second, b.polls_per_second),
            join_p99: p99_ratio(&s.join, &b.join),
            poll_p99: p99_ratio(&s.poll, &b.poll),
            leave_p99: p99_ratio(&s.leave, &b.leave),
        };
        let p99 = |summary: &Option<Summary>| summary.map(|s| s.p99_ms);
        let targets = vec![
            Target {
                what: format!("admitted/s service/baseline >= {RATIO_TARGET}"),
                measured: Some(ratios.admitted_per_second),
                unit: "",
                met: ratios.admitted_per_second >= RATIO_TARGET,
            },
            Target {
                what: format!("service poll p99 < {P99_TARGET_MS} ms"),
                measured: p99(&s.poll),
                unit: "ms",
                met: p99(&s.poll).is_some_and(|ms| ms < P99_TARGET_MS),
            },
            Target {
                what: format!("service join p99 < {P99_TARGET_MS} ms"),
                measured: p99(&s.join),
                unit: "ms",
                met: p99(&s.join).is_some_and(|ms| ms < P99_TARGET_MS),
            },
        ];
        let mut failures = checks(s, args);
        failures.extend(checks(b, args));
        QueueReport {
            users: args.users,
            clients: args.clients,
            active_limit: args.active_limit,
            poll_interval_ms: args.poll_interval_ms,
            warm_token_cache: !args.cold_tokens,
            machine,
            redis,
            api,
            service,
            baseline,
            ratios,
            targets,
            failures,
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What must hold for a phase to count: each user admitted once (as the clients saw it and as
/// Redis counted it), never more active than the limit, the queue empty at the end, and every
/// call answered as a live queue answers.
fn checks(run: &PhaseRun, args: &QueueArgs) -> Vec<String> {
    let name = run.phase;
    let mut failures = Vec::new();
    if run.users_admitted_once != args.users {
        failures.push(format!(
            "{name}: {} of {} users admitted exactly once ({} never, {} more than once)",
            run.users_admitted_once, args.users, run.users_never_admitted, run.users_admitted_again
        ));
    }
    if let Some(recorded) = run.admissions_recorded {
        if run.seconds < COUNTERS_CHECKED_UP_TO_SECONDS && recorded != args.users as u64 {
            failures.push(format!(
                "{name}: Redis counted {recorded} admissions for {} users",
                args.users
            ));
        }
    }
    let sampled = &run.sampled;
    if sampled.max_active > u64::from(args.active_limit) {
        failures.push(format!(
            "{name}: {} active at once, over the limit of {}",
            sampled.max_active, args.active_limit
        ));
    }
    if sampled.samples == 0 {
        failures.push(format!(
            "{name}: the sampler read the queue's size 0 times ({} failed reads)",
            sampled.failed_reads
        ));
    }
    if (sampled.active_after, sampled.waiting_after) != (Some(0), Some(0)) {
        failures.push(format!(
            "{name}: the queue did not end empty (active {:?}, waiting {:?})",
            sampled.active_after, sampled.waiting_after
        ));
    }
    if !run.failures.is_empty() {
        failures.push(format!(
            "{name}: {} calls failed (first: {})",
            run.failures.values().sum::<u64>(),
            run.first_failure.as_deref().unwrap_or("?")
        ));
    }
    failures
}

fn ratio(service: f64, baseline: f64) -> f64 {
    service / baseline.max(f64::MIN_POSITIVE)
}

fn p99_ratio(service: &Option<Summary>, baseline: &Option<Summary>) -> Option<f64> {
    Some(ratio(service.as_ref()?.p99_ms, baseline.as_ref()?.p99_ms))
}

/// `p50 / p99` in milliseconds, or a dash when nothing was recorded.
fn p50_p99(summary: &Option<Summary>) -> String {
    summary.map_or_else(
        || "-".to_owned(),
        |s| format!("{:.2} / {:.2}", s.p50_ms, s.p99_ms),
    )
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("p99 x{r:.2}"))
}

impl fmt::Display for QueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = match self.poll_interval_ms {
            0 => "polling in a closed loop (no pause)".to_owned(),
            ms => format!("polling every {ms} ms"),
        };
        writeln!(
            f,
            "== queue: {} users, {} clients {pace}, active limit {} ==",
            self.users, self.clients, self.active_limit
        )?;
        let m = &self.machine;
        writeln!(
            f,
            "machine: {} cores ({}), {:.1} GiB RAM; Redis {} at {} ({})",
            m.cores, m.cpu, m.memory_gib, self.redis.version, self.redis.url, self.redis.source
        )?;
        writeln!(
            f,
            "concert-api: {} (built {})",
            self.api.binary, self.api.built_at
        )?;
        writeln!(
            f,
            "each user: join, poll until active, leave; service first, then baseline, each with \
             its own key prefix; {}",
            if self.warm_token_cache {
                "every user signed in before the service phase (--cold-tokens: not)"
            } else {
                "each join is the user's first request to the API (token looked up in PostgreSQL; --cold-tokens)"
            }
        )?;
        writeln!(
            f,
            "\n{:<26}{:>11}{:>9}{:>9}{:>11}{:>18}{:>18}{:>18}{:>9}",
            "",
            "admitted/s",
            "joins/s",
            "polls/s",
            "polls/user",
            "join p50/p99 ms",
            "poll p50/p99 ms",
            "leave p50/p99 ms",
            "seconds"
        )?;
        for (label, phase) in [
            ("service (HTTP API)", &self.service.run),
            ("baseline (Queue -> Redis)", &self.baseline.run),
        ] {
            writeln!(
                f,
                "{label:<26}{:>11.0}{:>9.0}{:>9.0}{:>11.1}{:>18}{:>18}{:>18}{:>9.2}",
                phase.admitted_per_second,
                phase.joins_per_second,
                phase.polls_per_second,
                phase.polls as f64 / phase.joins.max(1) as f64,
                p50_p99(&phase.join),
                p50_p99(&phase.poll),
                p50_p99(&phase.leave),
                phase.seconds
            )?;
        }
        let r = &self.ratios;
        writeln!(
            f,
            "{:<26}{:>11.2}{:>9.2}{:>9.2}{:>11}{:>18}{:>18}{:>18}\n",
            "service/baseline",
            r.admitted_per_second,
            r.joins_per_second,
            r.polls_per_second,
            "",
            times(r.join_p99),
            times(r.poll_p99),
            times(r.leave_p99)
        )?;
        write_phase(f, &self.service, self.active_limit)?;
        write_phase(f, &self.baseline, self.active_limit)?;
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let measured = match (t.measured, t.unit) {
                    (None, _) => "-".to_owned(),
                    // Three decimals, so a ratio just under the target does not show as equal.
                    (Some(v), "") => format!("{v:.3}"),
                    (Some(v), unit) => format!("{v:.2} {unit}"),
                };
                let verdict = if t.met { "met" } else { "NOT MET" };
                format!("{}: {measured} {verdict}", t.what)
            })
            .collect();
        writeln!(f, "targets: {}", targets.join("; "))?;
        if self.failures.is_empty() {
            writeln!(f, "checks: passed")
        } else {
            writeln!(f, "checks: FAILED\n  {}", self.failures.join("\n  "))
        }
    }
}

fn write_phase(f: &mut fmt::Formatter<'_>, phase: &Phase, limit: u32) -> fmt::Result {
    let run = &phase.run;
    let recorded = match run.admissions_recorded {
        Some(_) if run.seconds >= COUNTERS_CHECKED_UP_TO_SECONDS => {
            "Redis's counters outlived by the phase, not checked".to_owned()
        }
        Some(n) => format!("Redis counted {n} admissions"),
        None => "Redis's count not read".to_owned(),
    };
    let s = &run.sampled;
    writeln!(
        f,
        "{}: {} of {} users admitted exactly once ({recorded}); at most {} active (limit {limit}) \
         and {} waiting over {} samples; at the end {} active, {} waiting",
        run.phase,
        run.users_admitted_once,
        run.users_admitted_once + run.users_never_admitted + run.users_admitted_again,
        s.max_active,
        s.max_waiting,
        s.samples,
        s.active_after.map_or("?".to_owned(), |n| n.to_string()),
        s.waiting_after.map_or("?".to_owned(), |n| n.to_string()),
    )?;
    writeln!(f, "  join   {}", show(&run.join))?;
    writeln!(f, "  poll   {}", show(&run.poll))?;
    writeln!(f, "  leave  {}", show(&run.leave))?;
    let failed: Vec<String> = run
        .failures
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    if !failed.is_empty() {
        writeln!(
            f,
            "  failed calls: {} (first: {})",
            failed.join(", "),
            run.first_failure.as_deref().unwrap_or("?")
        )?;
    }
    let observed = phase.observed.to_string();
    writeln!(f, "  {}", observed.trim_end().replace('\n', "\n  "))?;
    let redis = phase
        .redis_cpu_percent
        .map_or("not visible from here".to_owned(), |p| format!("{p:.0}%"));
    write!(f, "  redis-server cpu (within other processes): {redis}")?;
    if let Some(memory) = phase.api_memory {
        write!(
            f,
            "; concert-api RSS peak {:.1} MiB, at the end {:.1} MiB",
            memory.peak_rss_mib, memory.rss_mib
        )?;
    }
    writeln!(f)
}
