//! Where the time goes during a run: CPU used by the API, by Postgres and by the bench itself
//! (from /proc), and what the database's backends were doing (sampled from pg_stat_activity).
//! Idle backends while clients wait point at the service; busy or waiting ones at Postgres.

use crate::BenchResult;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Linux reports process CPU time in USER_HZ ticks, which is 100 on every mainstream build.
pub const TICKS_PER_SECOND: f64 = 100.0;

pub struct Observer {
    api_pid: u32,
    before: CpuTimes,
    started: Instant,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<BenchResult<BTreeMap<String, u64>>>,
}

#[derive(Debug, Serialize)]
pub struct Observation {
    /// Share of one core, in percent, over the run (this machine's cores sum to 100 x cores).
    pub api_cpu_percent: f64,
    pub postgres_cpu_percent: f64,
    pub bench_cpu_percent: f64,
    pub machine_idle_percent: f64,
    /// Everything else running on the machine meanwhile (builds, other benches): noise.
    pub other_cpu_percent: f64,
    pub cores: usize,
    /// Average number of the database's backends in each state per sample, e.g.
    /// `active: CPU`, `active: IO:WALSync`, `idle`, `idle in transaction`.
    pub backends: BTreeMap<String, f64>,
}

#[derive(Default)]
struct CpuTimes {
    api: u64,
    postgres: u64,
    bench: u64,
    machine_total: u64,
    machine_idle: u64,
    cores: usize,
}

impl Observer {
    pub fn start(database_url: &str, api_pid: u32) -> BenchResult<Observer> {
        let mut conn = PgConnection::establish(database_url)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut tally = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                for (state, n) in backend_states(&mut conn)? {
                    *tally.entry(state).or_insert(0) += n as u64;
                }
                *tally.entry(SAMPLES.to_owned()).or_insert(0) += 1;
                std::thread::sleep(SAMPLE_EVERY);
            }
            Ok(tally)
        });
        Ok(Observer {
            api_pid,
            before: cpu_times(api_pid),
            started: Instant::now(),
            stop,
            sampler,
        })
    }

    pub fn finish(self) -> BenchResult<Observation> {
        let after = cpu_times(self.api_pid);
        let seconds = self.started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = self
            .sampler
            .join()
            .map_err(|_| "the pg_stat_activity sampler panicked")??;
        let samples = tally.remove(SAMPLES).unwrap_or(0).max(1) as f64;
        let percent =
            |a: u64, b: u64| (b.saturating_sub(a)) as f64 / TICKS_PER_SECOND / seconds * 100.0;
        let machine = after
            .machine_total
            .saturating_sub(self.before.machine_total)
            .max(1) as f64;
        let idle = after.machine_idle.saturating_sub(self.before.machine_idle) as f64 / machine;
        let (api, postgres, bench) = (
            percent(self.before.api, after.api),
            percent(self.before.postgres, after.postgres),
            percent(self.before.bench, after.bench),
        );
        let busy = (1.0 - idle) * after.cores as f64 * 100.0;
        Ok(Observation {
            api_cpu_percent: api,
            postgres_cpu_percent: postgres,
            bench_cpu_percent: bench,
            machine_idle_percent: idle * 100.0,
            other_cpu_percent: (busy - api - postgres - bench).max(0.0),
            cores: after.cores,
            backends: tally
                .into_iter()
                .map(|(state, n)| (state, n as f64 / samples))
                .collect(),
        })
    }
}

const SAMPLES: &str = "\u{0}samples";

fn backend_states(conn: &mut PgConnection) -> QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct State {
        #[diesel(sql_type = Text)]
        what: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<State> = diesel::sql_query(
        "SELECT CASE WHEN state = 'active' \
                     THEN 'active: ' || coalesce(wait_event_type || ':' || wait_event, 'CPU') \
                     ELSE coalesce(state, 'unknown') END AS what, \
                count(*) AS n \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND backend_type = 'client backend' \
         GROUP BY 1",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|row| (row.what, row.n)).collect())
}

/// CPU ticks so far; a process that cannot be read counts as zero rather than failing the run.
fn cpu_times(api_pid: u32) -> CpuTimes {
    let (machine_total, machine_idle, cores) = machine_ticks().unwrap_or((0, 0, 1));
    CpuTimes {
        api: process_ticks(&format!("/proc/{api_pid}/stat")).unwrap_or(0),
        postgres: postgres_ticks(),
        bench: process_ticks("/proc/self/stat").unwrap_or(0),
        machine_total,
        machine_idle,
        cores,
    }
}

/// utime + stime of one process (fields 14 and 15 of /proc/<pid>/stat; the name in field 2
/// may contain spaces, so count from the closing parenthesis).
fn process_ticks(path: &str) -> Option<u64> {
    stat_fields(path, &[11, 12])
}

/// utime + stime + cutime + cstime: a backend that exits during the run is reaped by the
/// postmaster, and its CPU time moves to the postmaster's children's time.
fn process_and_children_ticks(path: &str) -> Option<u64> {
    stat_fields(path, &[11, 12, 13, 14])
}

fn stat_fields(path: &str, indexes: &[usize]) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    indexes
        .iter()
        .map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

/// All processes named `postgres`: the server's backends (live and exited) and its workers.
fn postgres_ticks() -> u64 {
    ticks_of_processes_named("postgres").unwrap_or(0)
}

/// CPU ticks of every process named `comm` (exited children included); `None` when no such
/// process is visible.
pub fn ticks_of_processes_named(comm: &str) -> Option<u64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let ticks: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == comm)
        })
        .filter_map(|entry| {
            process_and_children_ticks(&entry.path().join("stat").to_string_lossy())
        })
        .collect();
    (!ticks.is_empty()).then(|| ticks.iter().sum())
}

/// (all, idle + iowait) ticks of the whole machine, from the `cpu` line of /proc/stat, and
/// the number of cores (its `cpuN` lines).
fn machine_ticks() -> Option<(u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cores = stat
        .lines()
        .filter(|line| {
            line.starts_with("cpu") && line.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        })
        .count()
        .max(1);
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((ticks.iter().sum(), idle, cores))
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cpu (100% = one core, {} cores): concert-api {:.0}%, postgres {:.0}%, concert-bench {:.0}%, \
             other processes {:.0}%; machine idle {:.0}%",
            self.cores,
            self.api_cpu_percent,
            self.postgres_cpu_percent,
            self.bench_cpu_percent,
            self.other_cpu_percent,
            self.machine_idle_percent
        )?;
        let mut states: Vec<_> = self.backends.iter().collect();
        states.sort_by(|a, b| b.1.total_cmp(a.1));
        let shown: Vec<String> = states
            .iter()
            .map(|(state, n)| format!("{state} {n:.1}"))
            .collect();
        writeln!(f, "db backends (average per sample): {}", shown.join(", "))
    }
}
