//! `concert-bench queue`: every user joins the waiting queue, polls until admitted and leaves
//! at once so the next in line gets in, through the real `concert-api` (`/queue/tokens`), then
//! the same sequence of the library's `Queue` calls straight from the bench to the same Redis
//! at the same concurrency. service/baseline is the headline: how much of the queue's own
//! capacity (its Lua scripts on Redis) the HTTP service delivers.
//!
//! Clients poll in a closed loop by default (no pause between polls): the heaviest load
//! `--clients` pollers can make, so both sides run saturated and their ratio compares
//! capacities. In a closed loop a call's latency is mostly its wait behind the other clients'
//! calls (Little's law: clients = throughput x latency); `--poll-interval-ms` paces the polls
//! as a browser would (the seat map polls every 2 s) to see the latency of an unsaturated
//! queue instead.
//!
//! Users sign in (one authenticated request each) before the timed phase, as they would before
//! a rush; `--cold-tokens` skips that, so each join also pays the PostgreSQL lookup of a bearer
//! token the API has not seen.

use crate::api_process::{built_at, ApiProcess, ApiSettings};
use crate::bench_db::BenchDb;
use crate::observe::{ticks_of_processes_named, Observer, TICKS_PER_SECOND};
use crate::queue_line::{Line, QueueUser};
use crate::queue_phase;
use crate::queue_redis::{BenchRedis, PhaseKeys};
use crate::queue_report::{ApiBuild, Machine, Phase, QueueReport};
use crate::BenchResult;
use concert_outbox::queue::{Queue, QueueSettings};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use pg_outbox::settings::Secret;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The API's own defaults (QUEUE_ACTIVE_TTL_SECONDS, QUEUE_TOKEN_TTL_SECONDS), given to both
/// sides so they run the same scripts with the same arguments.
const ACTIVE_TTL: Duration = Duration::from_secs(300);
const TOKEN_TTL: Duration = Duration::from_secs(600);
/// Set-up requests in flight while users sign in before the service phase, as the other
/// benches' set-up.
const WARM_UP_CONCURRENCY: usize = 32;

#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// Concurrent clients; each takes the next user until every user has had a turn.
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Users who join, wait, are admitted and leave, once each, in each phase.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// QUEUE_ACTIVE_LIMIT: users active at once.
    #[arg(long, default_value_t = 100)]
    pub active_limit: u32,
    /// Pause before each poll of a waiting user; 0 polls in a closed loop.
    #[arg(long, default_value_t = 0)]
    pub poll_interval_ms: u64,
    /// Make every join the user's first request to concert-api, so the timed phase also looks
    /// up 10,000 bearer tokens in PostgreSQL. By default every user has signed in before the
    /// rush (as the seat map does when it loads), and the timed phase measures the queue.
    #[arg(long)]
    pub cold_tokens: bool,
    /// The Redis both phases use [default: the machine's on 127.0.0.1:6379 if it answers PING,
    /// else a private redis-server in a temporary folder].
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    #[command(flatten)]
    pub api: ApiSettings,
}

pub async fn run(server_url: &str, args: &QueueArgs) -> BenchResult<QueueReport> {
    if args.users == 0 || args.clients == 0 || args.active_limit == 0 {
        return Err("--users, --clients and --active-limit must each be at least 1".into());
    }
    let redis = BenchRedis::choose(args.redis_url.as_deref())?;
    let redis_note = redis.note()?;
    let db = BenchDb::create(server_url)?;
    let users = {
        let (url, count) = (db.url.clone(), args.users);
        let made = tokio::task::spawn_blocking(move || -> BenchResult<Vec<QueueUser>> {
            Ok(create_users(&mut PgConnection::establish(&url)?, count)?)
        });
        Arc::new(made.await??)
    };
    println!(
        "queue: database {}, Redis {} ({}); {} users, {} clients, active limit {}",
        db.name(),
        redis_note.url,
        redis_note.source,
        args.users,
        args.clients,
        args.active_limit
    );
    let (service, api) = service_phase(&db, &redis.url, &users, args).await?;
    let baseline = baseline_phase(&db, &redis.url, &users, args).await?;
    Ok(QueueReport::new(
        args,
        redis_note,
        Machine::this_one(),
        api,
        service,
        baseline,
    ))
}

/// Every user through `concert-api`'s `/queue/tokens`, the API stopped afterwards.
async fn service_phase(
    db: &BenchDb,
    redis_url: &str,
    users: &Arc<Vec<QueueUser>>,
    args: &QueueArgs,
) -> BenchResult<(Phase, ApiBuild)> {
    let keys = PhaseKeys::new(redis_url, "service");
    let env = queue_env(redis_url, &keys.prefix, args.active_limit);
    let api = ApiProcess::spawn_with(&db.url, &args.api, &env).await?;
    println!(
        "  service phase: join, poll until active, leave (/queue/tokens) through concert-api (pid {})",
        api.pid()
    );
    let line = Line::service(&api.base_url, args.clients)?;
    if !args.cold_tokens {
        authenticate_each(&line, users).await?;
    }
    let sampler = queue_for(redis_url, &keys.prefix, args.active_limit)?;
    let (observer, redis_cpu) = (Observer::start(&db.url, api.pid())?, RedisCpu::start());
    let mut run = queue_phase::run(
        line,
        users.clone(),
        args.clients,
        poll_interval(args),
        sampler,
    )
    .await?;
    let (observed, redis_cpu_percent) = (observer.finish()?, redis_cpu.finish());
    let memory = api.memory()?;
    let build = ApiBuild {
        binary: api.binary.display().to_string(),
        built_at: built_at(&api.binary),
    };
    // Stopped before the baseline, so neither its idle connections nor its settler take
    // anything from it.
    api.stop().await?;
    run.admissions_recorded = Some(admissions_recorded(&keys).await?);
    println!(
        "  service:  {:.0} admitted/s in {:.2} s",
        run.admitted_per_second, run.seconds
    );
    let phase = Phase {
        run,
        observed,
        redis_cpu_percent,
        api_memory: Some(memory),
    };
    Ok((phase, build))
}

/// Every user through the library's `Queue`, straight from the bench to Redis.
async fn baseline_phase(
    db: &BenchDb,
    redis_url: &str,
    users: &Arc<Vec<QueueUser>>,
    args: &QueueArgs,
) -> BenchResult<Phase> {
    let keys = PhaseKeys::new(redis_url, "baseline");
    println!("  baseline phase: Queue::join, status until active, finish straight to Redis");
    let line = Line::Library(queue_for(redis_url, &keys.prefix, args.active_limit)?);
    let sampler = queue_for(redis_url, &keys.prefix, args.active_limit)?;
    let (observer, redis_cpu) = (Observer::start(&db.url, 0)?, RedisCpu::start());
    let mut run = queue_phase::run(
        line,
        users.clone(),
        args.clients,
        poll_interval(args),
        sampler,
    )
    .await?;
    let (observed, redis_cpu_percent) = (observer.finish()?, redis_cpu.finish());
    run.admissions_recorded = Some(admissions_recorded(&keys).await?);
    println!(
        "  baseline: {:.0} admitted/s in {:.2} s",
        run.admitted_per_second, run.seconds
    );
    Ok(Phase {
        run,
        observed,
        redis_cpu_percent,
        api_memory: None,
    })
}

fn poll_interval(args: &QueueArgs) -> Duration {
    Duration::from_millis(args.poll_interval_ms)
}

/// Every user's first request, made before the clock starts, a few at a time.
async fn authenticate_each(line: &Line, users: &[QueueUser]) -> BenchResult<()> {
    println!("  signing each user in once before the rush (--cold-tokens skips this)");
    stream::iter(users)
        .map(|user| line.authenticate(user))
        .buffer_unordered(WARM_UP_CONCURRENCY)
        .map_err(|failure| format!("{}: {}", failure.kind, failure.detail))
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// The queue settings of the measured API: the bench's Redis and key prefix, and the same
/// limit and TTLs as the baseline's `Queue`.
fn queue_env(redis_url: &str, prefix: &str, active_limit: u32) -> Vec<(&'static str, String)> {
    vec![
        ("QUEUE_ENABLED", "true".to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("QUEUE_KEY_PREFIX", prefix.to_owned()),
        ("QUEUE_ACTIVE_LIMIT", active_limit.to_string()),
        ("QUEUE_ACTIVE_TTL_SECONDS", ACTIVE_TTL.as_secs().to_string()),
        ("QUEUE_TOKEN_TTL_SECONDS", TOKEN_TTL.as_secs().to_string()),
    ]
}

fn queue_for(redis_url: &str, prefix: &str, active_limit: u32) -> BenchResult<Arc<Queue>> {
    Ok(Arc::new(Queue::new(QueueSettings {
        redis_url: Secret::new(redis_url.to_owned()),
        active_limit,
        active_ttl: ACTIVE_TTL,
        token_ttl: TOKEN_TTL,
        key_prefix: prefix.to_owned(),
    })?))
}

/// The phase's admissions as Redis counted them, while its per-second counters still live.
async fn admissions_recorded(keys: &PhaseKeys) -> BenchResult<u64> {
    let (url, prefix) = (keys.url().to_owned(), keys.prefix.clone());
    let counted =
        tokio::task::spawn_blocking(move || PhaseKeys::admissions_recorded_at(&url, &prefix));
    counted.await?
}

/// `count` users with fresh bearer tokens, in one statement: set-up is not what is measured,
/// and 10,000 `POST /users` would take longer than the phases. The token is stored as the API
/// stores it (its SHA-256, computed by Postgres), so the API authenticates it as its own.
fn create_users(conn: &mut PgConnection, count: usize) -> QueryResult<Vec<QueueUser>> {
    #[derive(QueryableByName)]
    struct Made {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let bearers: Vec<String> = (0..count)
        .map(|_| {
            format!(
                "ct_{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        })
        .collect();
    let made: Vec<Made> = diesel::sql_query(
        "WITH given AS ( \
             SELECT token, ord FROM unnest($1::text[]) WITH ORDINALITY AS t (token, ord) \
         ), made AS ( \
             INSERT INTO users (name, token_hash) \
             SELECT 'queue bench user ' || ord, sha256(convert_to(token, 'UTF8')) FROM given \
             RETURNING id, token_hash \
         ) \
         SELECT made.id FROM made \
         JOIN given ON made.token_hash = sha256(convert_to(given.token, 'UTF8')) \
         ORDER BY given.ord",
    )
    .bind::<Array<Text>, _>(&bearers)
    .load(conn)?;
    Ok(made
        .into_iter()
        .zip(bearers)
        .map(|(made, bearer)| QueueUser {
            id: made.id,
            bearer,
        })
        .collect())
}

/// CPU used by every `redis-server` process during a phase; `None` when none is visible from
/// here (a Redis in another container or on another host).
struct RedisCpu {
    before: Option<u64>,
    started: Instant,
}

impl RedisCpu {
    fn start() -> RedisCpu {
        RedisCpu {
            before: ticks_of_processes_named("redis-server"),
            started: Instant::now(),
        }
    }

    /// Share of one core, in percent, like the observer's figures.
    fn finish(self) -> Option<f64> {
        let (before, after) = (self.before?, ticks_of_processes_named("redis-server")?);
        let seconds = self.started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
        Some(after.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds * 100.0)
    }
}
