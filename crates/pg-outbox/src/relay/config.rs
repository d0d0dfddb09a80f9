//! The relay's settings. They come from the environment (or a service's flags of the same
//! meaning) through [`RelayConfig::from_lookup`]; defaults live here and nowhere else. Where
//! events go is not a setting of the relay: a service builds its destinations and adds them
//! with [`Relay::with_destination`](super::Relay::with_destination).

use crate::settings::{ConfigError, Secret, Settings};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where the outbox is; the relay LISTENs on a connection of its own there.
    pub database_url: Secret,
    /// Rows claimed per round, and the largest batch POSTed to a batch-capable destination.
    pub batch_size: u32,
    /// POST requests in flight at once, per worker, for a destination that sends one event per
    /// request.
    pub concurrency: usize,
    /// Claim loops per destination. SKIP LOCKED and the per-aggregate rule make them safe side
    /// by side; two overlap one loop's HTTP wait with another's database work.
    pub workers: usize,
    /// Claim even without a NOTIFY this often: notifications are a hint, not the carrier.
    pub poll_interval: Duration,
    /// Attempts after which a permanently rejected delivery is parked as dead.
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long one request to a destination may take: an HTTP POST, or a publish waiting for
    /// its broker's acknowledgement.
    pub request_timeout: Duration,
    /// How long a claim is exclusive; another relay may take the rows over after it lapses.
    pub lease: Duration,
    /// Sent events older than this are deleted; dead ones are kept.
    pub retention: Duration,
    /// Whether to LISTEN for `outbox_events` (off simulates a pooler that drops notifications).
    pub listen: bool,
}

/// HTTP calls one claim can make before it is acknowledged: a batch POST, then the same events
/// one by one if the batch was rejected. The lease must outlast all of them.
pub const CALLS_PER_CLAIM: u32 = 2;
/// Database work around the calls (claim, acknowledge) that the lease must also cover.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// Rows one claim may take; also the largest batch POSTed.
pub const MAX_BATCH_SIZE: u32 = 1_000;
/// Rows claimed per round: the largest allowed. A round has fixed costs (two statements and
/// their commits, a request), so a backlog drains faster in bigger rounds: at a 100,000-event
/// backlog, batched delivery drained 20,600-24,700 events/s in rounds of 200, 23,200-36,500 in
/// rounds of 500 and 32,400-36,700 in rounds of 1,000 (measured in the concert service this
/// crate was lifted from). Under a steady load
/// a round takes whatever is due, so the size delays nothing; a destination that limits body
/// sizes needs a smaller one.
pub const DEFAULT_BATCH_SIZE: u32 = MAX_BATCH_SIZE;

impl RelayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Settings(&lookup);
        let config = RelayConfig {
            database_url: Secret::new(env.required("DATABASE_URL")?),
            batch_size: env.parsed_or("RELAY_BATCH_SIZE", DEFAULT_BATCH_SIZE)?,
            concurrency: env.parsed_or("RELAY_CONCURRENCY", 32)?,
            workers: env.parsed_or("RELAY_WORKERS", 2)?,
            poll_interval: millis(env.parsed_or("RELAY_POLL_INTERVAL_MS", 500)?),
            max_attempts: env.parsed_or("RELAY_MAX_ATTEMPTS", 12)?,
            backoff_base: millis(env.parsed_or("RELAY_BACKOFF_BASE_MS", 500)?),
            backoff_max: millis(env.parsed_or("RELAY_BACKOFF_MAX_MS", 60_000)?),
            request_timeout: millis(env.parsed_or("RELAY_REQUEST_TIMEOUT_MS", 5_000)?),
            lease: Duration::from_secs(env.parsed_or("RELAY_LEASE_SECONDS", 60)?),
            retention: parse_duration(
                "OUTBOX_RETENTION",
                &env.parsed_or("OUTBOX_RETENTION", "7d".to_string())?,
            )?,
            listen: env.parsed_or("RELAY_LISTEN", true)?,
        };
        config.validate()
    }

    /// The longest time between two sends of one event to one destination: a send whose
    /// acknowledgement was lost is sent again once its lease has lapsed, and a failed one after
    /// at most the longest backoff (a receiver's `Retry-After` aside). A receiver that drops
    /// duplicates by event id must remember an id at least this long.
    pub fn longest_resend_gap(&self) -> Duration {
        self.lease + self.backoff_max
    }

    /// Connections a relay with `destinations` destinations needs: one per loop, plus
    /// maintenance and a spare.
    pub fn pool_size(&self, destinations: usize) -> u32 {
        u32::try_from(destinations * self.workers + 2).unwrap_or(u32::MAX)
    }

    /// The relay's own pool for `destinations` destinations: [`pool_size`](Self::pool_size)
    /// connections that commit without waiting for the WAL flush (see
    /// [`crate::db::build_relay_pool`]).
    pub fn build_pool(
        &self,
        destinations: usize,
    ) -> Result<crate::db::DbPool, diesel::r2d2::PoolError> {
        crate::db::build_relay_pool(self.database_url.expose(), self.pool_size(destinations))
    }

    /// Checks the settings against each other, so a relay never starts in a state where it
    /// could acknowledge another relay's delivery or forget an event.
    fn validate(self) -> Result<Self, ConfigError> {
        let fail = |name, reason: String| Err(ConfigError { name, reason });
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return fail(
                "RELAY_BATCH_SIZE",
                format!("must be between 1 and {MAX_BATCH_SIZE}"),
            );
        }
        if self.concurrency == 0 {
            return fail("RELAY_CONCURRENCY", "must be at least 1".into());
        }
        if self.workers == 0 || self.workers > 16 {
            return fail("RELAY_WORKERS", "must be between 1 and 16".into());
        }
        if self.max_attempts < 1 {
            return fail("RELAY_MAX_ATTEMPTS", "must be at least 1".into());
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return fail(
                "RELAY_BACKOFF_MAX_MS",
                "must be at least RELAY_BACKOFF_BASE_MS, which must be positive".into(),
            );
        }
        if self.request_timeout.is_zero() {
            return fail("RELAY_REQUEST_TIMEOUT_MS", "must be positive".into());
        }
        let needed = self.request_timeout * CALLS_PER_CLAIM + LEASE_MARGIN;
        if self.lease <= needed {
            return fail(
                "RELAY_LEASE_SECONDS",
                format!(
                    "a lease of {:?} does not outlast {CALLS_PER_CLAIM} requests of RELAY_REQUEST_TIMEOUT_MS ({:?}) plus {:?}; \
                     a stalled relay could then acknowledge a delivery another relay has taken over",
                    self.lease, self.request_timeout, LEASE_MARGIN
                ),
            );
        }
        let window =
            super::backoff::retry_window(self.backoff_base, self.backoff_max, self.max_attempts);
        if self.retention < window {
            return fail(
                "OUTBOX_RETENTION",
                format!(
                    "must be at least the longest retry window ({}s)",
                    window.as_secs()
                ),
            );
        }
        Ok(self)
    }
}

/// How long after claiming a relay may still start sending: the lease, less one request and
/// the database margin, so every request it starts ends (or times out) while the lease holds.
pub fn usable_lease(config: &RelayConfig) -> Duration {
    config
        .lease
        .saturating_sub(config.request_timeout + LEASE_MARGIN)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `90s`, `15m`, `12h`, `7d`, or plain seconds.
pub fn parse_duration(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let seconds_per_unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if seconds_per_unit > 0 => {
            Ok(Duration::from_secs(n.saturating_mul(seconds_per_unit)))
        }
        _ => Err(ConfigError {
            name,
            reason: format!("cannot parse {raw:?}: expected e.g. 90s, 15m, 12h or 7d"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<RelayConfig, ConfigError> {
        let mut map: HashMap<String, String> =
            HashMap::from([("DATABASE_URL".into(), "postgres://x/y".into())]);
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        RelayConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn a_lease_shorter_than_the_requests_it_covers_is_refused() {
        let err = config_from(&[
            ("RELAY_REQUEST_TIMEOUT_MS", "30000"),
            ("RELAY_LEASE_SECONDS", "60"),
        ])
        .unwrap_err();
        assert_eq!(err.name, "RELAY_LEASE_SECONDS");
        assert!(config_from(&[
            ("RELAY_REQUEST_TIMEOUT_MS", "1000"),
            ("RELAY_LEASE_SECONDS", "8")
        ])
        .is_ok());
    }

    #[test]
    fn retention_shorter_than_the_retry_window_is_refused() {
        let err = config_from(&[("OUTBOX_RETENTION", "1m")]).unwrap_err();
        assert_eq!(err.name, "OUTBOX_RETENTION");
        assert_eq!(
            config_from(&[]).unwrap().retention,
            Duration::from_secs(7 * 86_400)
        );
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("X", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("X", "2h").unwrap(),
            Duration::from_secs(7200)
        );
        assert!(parse_duration("X", "soon").is_err());
    }
}
