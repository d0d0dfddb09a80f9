//! The waiting queue: in a rush everyone gets a place in line, at most `QUEUE_ACTIVE_LIMIT`
//! users are *active* (may hold and pay) at once, and a confirmed payment ends a user's turn so
//! the next one is admitted. The queue lives in Redis, so every API process shares it; each
//! change is one Lua script (`scripts/`), run by Redis alone, so admission and expiry are atomic
//! and the active set never exceeds the limit. PostgreSQL never learns of it: a failing Redis
//! refuses new work with 503 but cannot undo a payment.

mod connection;
pub mod private_redis;
mod settings;

pub use settings::QueueSettings;

use chrono::{DateTime, TimeZone, Utc};
use connection::Connections;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// The longest a queue call waits for Redis before the request is answered 503.
const REDIS_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How often each API process settles the queue, so a lapsed turn passes to the next in line
/// within a second even when no request arrives.
pub const SETTLE_EVERY: Duration = Duration::from_millis(250);

fn with_settle(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("scripts/settle.lua")))
}

static JOIN: LazyLock<Script> = LazyLock::new(|| with_settle(include_str!("scripts/join.lua")));
static STATUS: LazyLock<Script> = LazyLock::new(|| with_settle(include_str!("scripts/status.lua")));
static FINISH: LazyLock<Script> = LazyLock::new(|| with_settle(include_str!("scripts/finish.lua")));
static MAINTAIN: LazyLock<Script> =
    LazyLock::new(|| with_settle(include_str!("scripts/maintain.lua")));
static COUNTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/counts.lua")));

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue's Redis did not answer")]
    Redis(#[from] redis::RedisError),
    #[error("the queue's Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the queue's Redis answered a token that is not one: {0:?}")]
    NotAToken(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// In line; polling keeps the place.
    Waiting,
    /// Admitted: may hold and pay until `active_until`.
    Active,
    /// The turn ended (paid, left, or not used in time) or the place was lost (not polled).
    Expired,
}

/// A live or ended token as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub status: TokenStatus,
    /// From the front of the line, active users included; 0 once expired.
    pub position: u64,
    pub active_until: Option<DateTime<Utc>>,
}

/// What one script did to the queue besides the caller's own request, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub admitted: u64,
    pub turns_ended: u64,
    pub places_lost: u64,
}

/// The queue's size, read in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub waiting: u64,
    pub active: u64,
    /// Users admitted during the ten whole seconds before the read, by every API process.
    pub admitted_last_10s: u64,
}

/// One API process's handle on the shared queue. It connects on first use (per thread, see
/// `connection`), so a Redis that is down at start-up or restarts later only costs the calls
/// made while it is away.
pub struct Queue {
    settings: QueueSettings,
    /// `{QUEUE_KEY_PREFIX}`: every script's `KEYS[1]`, which its keys are named from.
    keys: String,
    connections: Connections,
}

impl Queue {
    pub fn new(settings: QueueSettings) -> Result<Queue, QueueError> {
        let client = redis::Client::open(settings.redis_url.expose())?;
        Ok(Queue {
            keys: format!("{{{}}}", settings.key_prefix),
            settings,
            connections: Connections::new(client),
        })
    }

    /// The user's token and place: a new one at the back of the line, or the one they have.
    pub async fn join(&self, user_id: i64) -> Result<(Uuid, Place), QueueError> {
        let fresh = Uuid::new_v4();
        let mut call = JOIN.prepare_invoke();
        self.settle_args(&mut call)
            .arg(user_id)
            .arg(fresh.to_string());
        let (settled, token, status, position, until): (Vec<u64>, String, String, u64, i64) =
            self.run(&mut call).await?;
        self.observe(&settled);
        let token = Uuid::parse_str(&token).map_err(|_| QueueError::NotAToken(token))?;
        Ok((token, place(&status, position, until)))
    }

    /// The token's place if it is `user_id`'s, `None` for anyone else's or an unknown one.
    /// `poll` keeps a waiting place for another `QUEUE_TOKEN_TTL_SECONDS`.
    pub async fn status(
        &self,
        user_id: i64,
        token: Uuid,
        poll: bool,
    ) -> Result<Option<Place>, QueueError> {
        let mut call = STATUS.prepare_invoke();
        self.settle_args(&mut call)
            .arg(user_id)
            .arg(token.to_string())
            .arg(if poll { "1" } else { "0" });
        let (settled, status, position, until): (Vec<u64>, String, u64, i64) =
            self.run(&mut call).await?;
        self.observe(&settled);
        Ok((status != "unknown").then(|| place(&status, position, until)))
    }

    /// Ends the user's turn (or place) and admits the next in line. `reason` labels the metric:
    /// `paid` or `left`. False when the token was not the user's live token.
    pub async fn finish(
        &self,
        user_id: i64,
        token: Uuid,
        reason: &'static str,
    ) -> Result<bool, QueueError> {
        let mut call = FINISH.prepare_invoke();
        self.settle_args(&mut call)
            .arg(user_id)
            .arg(token.to_string());
        let (settled, ended): (Vec<u64>, u8) = self.run(&mut call).await?;
        self.observe(&settled);
        if ended == 1 {
            crate::metrics::global().observe_queue_expiry(reason, 1);
        }
        Ok(ended == 1)
    }

    /// Ends lapsed turns and places and admits the next in line; what the settler runs.
    pub async fn settle(&self) -> Result<Settled, QueueError> {
        let mut call = MAINTAIN.prepare_invoke();
        self.settle_args(&mut call);
        let (settled,): (Vec<u64>,) = self.run(&mut call).await?;
        Ok(self.observe(&settled))
    }

    /// How many wait and how many are active, read together without settling.
    pub async fn counts(&self) -> Result<Counts, QueueError> {
        let mut call = COUNTS.prepare_invoke();
        call.key(&self.keys);
        let (waiting, active, admitted_last_10s): (u64, u64, u64) = self.run(&mut call).await?;
        Ok(Counts {
            waiting,
            active,
            admitted_last_10s,
        })
    }

    /// Whether Redis answers and runs the queue's scripts, for `/health`: a server that answers
    /// PING but cannot run them (too old, scripting disabled) would refuse every queue call.
    pub async fn check(&self) -> Result<(), QueueError> {
        self.counts().await.map(drop)
    }

    /// Settles the queue every `SETTLE_EVERY` until `shutdown`; a Redis that does not answer is
    /// logged once per outage, not once per tick.
    pub async fn run_settler(
        self: std::sync::Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(SETTLE_EVERY) => {}
            }
            match self.settle().await {
                Ok(settled) => {
                    if failing {
                        log::info!("queue settler reaches Redis again");
                        failing = false;
                    }
                    if settled != Settled::default() {
                        log::info!(
                            "queue settled admitted={} turns_ended={} places_lost={}",
                            settled.admitted,
                            settled.turns_ended,
                            settled.places_lost
                        );
                    }
                }
                Err(error) if !failing => {
                    log::warn!(
                        "queue settler cannot reach Redis error=\"{}\"",
                        crate::error::cause_chain(&error)
                    );
                    failing = true;
                }
                Err(_) => {}
            }
        }
        log::info!("queue settler stopped");
    }

    fn settle_args<'a, 'b>(
        &self,
        call: &'b mut redis::ScriptInvocation<'a>,
    ) -> &'b mut redis::ScriptInvocation<'a> {
        call.key(&self.keys)
            .arg(self.settings.active_limit)
            .arg(self.settings.active_ttl.as_millis() as u64)
            .arg(self.settings.token_ttl.as_millis() as u64)
    }

    fn observe(&self, settled: &[u64]) -> Settled {
        let settled = Settled {
            admitted: settled.first().copied().unwrap_or(0),
            turns_ended: settled.get(1).copied().unwrap_or(0),
            places_lost: settled.get(2).copied().unwrap_or(0),
        };
        let metrics = crate::metrics::global();
        metrics.observe_queue_admissions(settled.admitted);
        metrics.observe_queue_expiry("turn_ended", settled.turns_ended);
        metrics.observe_queue_expiry("place_lost", settled.places_lost);
        settled
    }

    /// Runs `call` on this thread's connection, waiting at most `REDIS_CALL_TIMEOUT`; a timeout
    /// or a broken connection drops the connection, so the next call makes a new one.
    async fn run<T: redis::FromRedisValue>(
        &self,
        call: &mut redis::ScriptInvocation<'_>,
    ) -> Result<T, QueueError> {
        let mut connection = self.connections.get(REDIS_CALL_TIMEOUT).await?;
        let answer = call.invoke_async(&mut connection);
        let error = match tokio::time::timeout(REDIS_CALL_TIMEOUT, answer).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !broken(&error) => return Err(error.into()),
            Ok(Err(error)) => QueueError::Redis(error),
            Err(_) => QueueError::Timeout(REDIS_CALL_TIMEOUT),
        };
        self.connections.forget();
        Err(error)
    }
}

/// Whether `error` means the connection is gone, rather than Redis refusing one command.
fn broken(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

fn place(status: &str, position: u64, active_until_ms: i64) -> Place {
    let status = match status {
        "active" => TokenStatus::Active,
        "waiting" => TokenStatus::Waiting,
        _ => TokenStatus::Expired,
    };
    let active_until = match status {
        TokenStatus::Active => Utc.timestamp_millis_opt(active_until_ms).single(),
        _ => None,
    };
    Place {
        status,
        position,
        active_until,
    }
}
