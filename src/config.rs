//! Typed settings read from the environment once, at start-up. Defaults live here and nowhere
//! else; a missing or malformed setting is one line naming the variable, never a panic.

use std::net::SocketAddr;
use std::time::Duration;

use pg_outbox::settings::Settings;
pub use pg_outbox::settings::{ConfigError, Secret};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database_url: Secret,
    pub bind_addr: SocketAddr,
    pub admin_token: Secret,
    pub hold_ttl: Duration,
    pub db_pool_size: u32,
    /// Holds running at once; the rest of the pool stays free for payments (see
    /// `reservations::SeatHolds`).
    pub hold_concurrency: u32,
    /// The relay's settings and destinations when it runs inside the API process
    /// (`RELAY_IN_PROCESS=true`).
    pub relay: Option<crate::outbox::RelaySettings>,
    /// The waiting queue (`QUEUE_ENABLED=true`, then `REDIS_URL` and the `QUEUE_*` settings).
    pub queue: Option<crate::queue::QueueSettings>,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can configure the app without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Settings(&lookup);
        let hold_ttl_seconds: u64 = env.parsed_or("HOLD_TTL_SECONDS", 300)?;
        if hold_ttl_seconds == 0 || hold_ttl_seconds > 86_400 {
            return Err(ConfigError {
                name: "HOLD_TTL_SECONDS",
                reason: format!("must be between 1 and 86400, got {hold_ttl_seconds}"),
            });
        }
        let db_pool_size: u32 = env.parsed_or("DB_POOL_SIZE", 16)?;
        if db_pool_size == 0 {
            return Err(ConfigError {
                name: "DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        let hold_concurrency: u32 = env.parsed_or("HOLD_CONCURRENCY", (db_pool_size / 2).max(1))?;
        if hold_concurrency == 0 || hold_concurrency > db_pool_size {
            return Err(ConfigError {
                name: "HOLD_CONCURRENCY",
                reason: format!("must be between 1 and DB_POOL_SIZE ({db_pool_size})"),
            });
        }
        let relay_in_process: bool = env.parsed_or("RELAY_IN_PROCESS", false)?;
        let relay = match relay_in_process {
            true => Some(crate::outbox::RelaySettings::from_lookup(&lookup)?),
            false => None,
        };
        Ok(ApiConfig {
            database_url: Secret::new(env.required("DATABASE_URL")?),
            bind_addr: env.parsed_or("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            admin_token: Secret::new(env.required("ADMIN_TOKEN")?),
            hold_ttl: Duration::from_secs(hold_ttl_seconds),
            db_pool_size,
            hold_concurrency,
            relay,
            queue: crate::queue::QueueSettings::from_lookup(&lookup)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ApiConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let config = config_from(&[("DATABASE_URL", "postgres://x/y"), ("ADMIN_TOKEN", "t")])
            .expect("valid config");
        assert_eq!(config.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.hold_ttl, Duration::from_secs(300));
        assert_eq!((config.db_pool_size, config.hold_concurrency), (16, 8));
        assert!(config.relay.is_none());
        assert!(config.queue.is_none());
    }

    #[test]
    fn holds_cannot_be_allowed_more_connections_than_the_pool_has() {
        let err = config_from(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("ADMIN_TOKEN", "t"),
            ("DB_POOL_SIZE", "4"),
            ("HOLD_CONCURRENCY", "5"),
        ])
        .expect_err("must fail");
        assert_eq!(err.name, "HOLD_CONCURRENCY");
    }

    #[test]
    fn a_missing_database_url_names_the_variable() {
        let err = config_from(&[("ADMIN_TOKEN", "t")]).expect_err("must fail");
        assert_eq!(err.name, "DATABASE_URL");
    }

    #[test]
    fn a_malformed_setting_names_the_variable_and_the_value() {
        let err = config_from(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("ADMIN_TOKEN", "t"),
            ("HOLD_TTL_SECONDS", "five"),
        ])
        .expect_err("must fail");
        assert_eq!(err.name, "HOLD_TTL_SECONDS");
        assert!(err.to_string().contains("five"));
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let config = config_from(&[
            ("DATABASE_URL", "postgres://u:pw@x/y"),
            ("ADMIN_TOKEN", "hunter2"),
        ])
        .expect("valid config");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("pw@"));
    }
}
