//! The relay's settings. They come from the environment (or flags of the same meaning, see
//! `outbox-relay --help`); defaults live here and nowhere else.

use crate::settings::{ConfigError, Secret, Settings};
use std::time::Duration;

/// How a destination wants its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// The outbox payload exactly as the payment transaction wrote it.
    Event,
    /// `{"event_id", "user_id", "reservation_id", "message"}` for the user-facing notifier.
    NotifierMessage,
}

#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// The name deliveries are recorded under (`outbox_destinations.name`).
    pub name: String,
    pub url: String,
    pub format: BodyFormat,
    /// Whether the endpoint accepts a JSON array of events in one POST.
    pub batch: bool,
}

impl DestinationConfig {
    /// The URL without any `user:password@`, for logs.
    pub fn url_for_logs(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                // Both only fail for URLs that cannot carry credentials at all.
                let _ = url.set_password(None);
                let _ = url.set_username("");
                url.to_string()
            }
            Err(_) => "<unparsable url>".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: Secret,
    pub destinations: Vec<DestinationConfig>,
    /// Rows claimed per round, and the largest batch POSTed to a batch-capable destination.
    pub batch_size: u32,
    /// POST requests in flight at once, per worker.
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
/// rounds of 500 and 32,400-36,700 in rounds of 1,000 (README, Performance). Under a steady load
/// a round takes whatever is due, so the size delays nothing; a destination that limits body
/// sizes needs a smaller one.
pub const DEFAULT_BATCH_SIZE: u32 = MAX_BATCH_SIZE;

impl RelayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Settings(&lookup);
        let data_platform_url =
            env.parsed_or("DATA_PLATFORM_URL", "http://127.0.0.1:9090".to_string())?;
        let notifier_url = match lookup("NOTIFY_URL").filter(|v| !v.trim().is_empty()) {
            Some(url) => endpoint(&url, "/notifications"),
            // The mock platform serves both paths, so one URL is enough for a demo.
            None => format!("{}/notifications", origin(&data_platform_url)),
        };
        let mut destinations = vec![
            DestinationConfig {
                name: "data_platform".into(),
                url: endpoint(&data_platform_url, "/reservations"),
                format: BodyFormat::Event,
                batch: env.parsed_or("DATA_PLATFORM_BATCH", true)?,
            },
            DestinationConfig {
                name: "notification".into(),
                url: notifier_url,
                format: BodyFormat::NotifierMessage,
                batch: env.parsed_or("NOTIFY_BATCH", true)?,
            },
        ];
        destinations.extend(extra_destinations(lookup("RELAY_EXTRA_DESTINATIONS"))?);
        let config = RelayConfig {
            database_url: Secret::new(env.required("DATABASE_URL")?),
            destinations,
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

    /// Connections the relay needs: one per loop, plus maintenance and a spare.
    pub fn pool_size(&self) -> u32 {
        u32::try_from(self.destinations.len() * self.workers + 2).unwrap_or(u32::MAX)
    }

    /// The relay's own pool: [`pool_size`](Self::pool_size) connections that commit without
    /// waiting for the WAL flush (see [`crate::db::build_relay_pool`]).
    pub fn build_pool(&self) -> Result<crate::db::DbPool, diesel::r2d2::PoolError> {
        crate::db::build_relay_pool(self.database_url.expose(), self.pool_size())
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

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url.trim_end_matches('/'),
    }
}

/// A URL without a path gets the destination's conventional path; one with a path is kept.
fn endpoint(url: &str, default_path: &str) -> String {
    let base = origin(url);
    if url.trim_end_matches('/') == base {
        format!("{base}{default_path}")
    } else {
        url.to_string()
    }
}

/// `RELAY_EXTRA_DESTINATIONS=name=url[;batch],name2=url2`: more endpoints that receive each
/// event's payload, each with its own delivery state. Adding one needs no code.
fn extra_destinations(raw: Option<String>) -> Result<Vec<DestinationConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let invalid = |reason: &str| ConfigError {
                name: "RELAY_EXTRA_DESTINATIONS",
                reason: format!("{entry:?}: {reason}"),
            };
            let (name, rest) = entry
                .trim()
                .split_once('=')
                .ok_or_else(|| invalid("expected name=url"))?;
            let (url, batch) = match rest.split_once(';') {
                Some((url, "batch")) => (url, true),
                Some(_) => return Err(invalid("the only option is ;batch")),
                None => (rest, false),
            };
            let valid_name = name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name || !url.starts_with("http") {
                return Err(invalid(
                    "name must be [a-z][a-z0-9_]* and url http(s)://...",
                ));
            }
            Ok(DestinationConfig {
                name: name.into(),
                url: url.into(),
                format: BodyFormat::Event,
                batch,
            })
        })
        .collect()
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
    fn credentials_in_a_destination_url_never_reach_the_logs() {
        let config =
            config_from(&[("DATA_PLATFORM_URL", "https://relay:s3cret@platform.example")]).unwrap();
        let shown = config.destinations[0].url_for_logs();
        assert_eq!(shown, "https://platform.example/reservations");
    }

    #[test]
    fn a_bare_platform_url_serves_both_destinations_by_their_paths() {
        let config = config_from(&[("DATA_PLATFORM_URL", "http://127.0.0.1:9090")]).unwrap();
        assert_eq!(
            config.destinations[0].url,
            "http://127.0.0.1:9090/reservations"
        );
        assert_eq!(
            config.destinations[1].url,
            "http://127.0.0.1:9090/notifications"
        );
        let explicit = config_from(&[
            ("DATA_PLATFORM_URL", "http://h/v1/ingest"),
            ("NOTIFY_URL", "http://n:1/"),
        ])
        .unwrap();
        assert_eq!(explicit.destinations[0].url, "http://h/v1/ingest");
        assert_eq!(explicit.destinations[1].url, "http://n:1/notifications");
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
    fn extra_destinations_are_configuration() {
        let config = config_from(&[(
            "RELAY_EXTRA_DESTINATIONS",
            "audit=http://a/x;batch,crm=http://c/y",
        )])
        .unwrap();
        let names: Vec<_> = config
            .destinations
            .iter()
            .map(|d| (d.name.as_str(), d.batch))
            .collect();
        assert_eq!(
            names,
            [
                ("data_platform", true),
                ("notification", true),
                ("audit", true),
                ("crm", false)
            ]
        );
        assert!(config_from(&[("RELAY_EXTRA_DESTINATIONS", "Bad=http://x")]).is_err());
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
