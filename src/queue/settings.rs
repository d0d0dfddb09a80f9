//! The queue's settings, read with the API's (`config::ApiConfig`).

use pg_outbox::settings::{ConfigError, Secret, Settings};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub redis_url: Secret,
    /// Users active (allowed to hold and pay) at once.
    pub active_limit: u32,
    /// How long an admitted user stays active without paying.
    pub active_ttl: Duration,
    /// How long a waiting token keeps its place without being polled.
    pub token_ttl: Duration,
    /// Names the queue's keys, so two queues can share one Redis.
    pub key_prefix: String,
}

impl QueueSettings {
    /// `None` unless `QUEUE_ENABLED` is true; then `REDIS_URL` is required.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<QueueSettings>, ConfigError> {
        let env = Settings(lookup);
        if !env.parsed_or("QUEUE_ENABLED", false)? {
            return Ok(None);
        }
        let redis_url = env.required("REDIS_URL")?;
        if let Err(error) = redis::Client::open(redis_url.as_str()) {
            return Err(ConfigError {
                name: "REDIS_URL",
                reason: format!("is not a Redis URL: {error}"),
            });
        }
        let active_limit: u32 = env.parsed_or("QUEUE_ACTIVE_LIMIT", 100)?;
        if active_limit == 0 {
            return Err(ConfigError {
                name: "QUEUE_ACTIVE_LIMIT",
                reason: "must be at least 1".into(),
            });
        }
        let key_prefix: String = env.parsed_or("QUEUE_KEY_PREFIX", "concert-queue".to_string())?;
        if key_prefix.contains(['{', '}']) {
            return Err(ConfigError {
                name: "QUEUE_KEY_PREFIX",
                reason: "must not contain braces (the queue wraps it in a hash tag)".into(),
            });
        }
        Ok(Some(QueueSettings {
            redis_url: Secret::new(redis_url),
            active_limit,
            active_ttl: seconds(&env, "QUEUE_ACTIVE_TTL_SECONDS", 300)?,
            token_ttl: seconds(&env, "QUEUE_TOKEN_TTL_SECONDS", 600)?,
            key_prefix,
        }))
    }
}

fn seconds(env: &Settings, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let value: u64 = env.parsed_or(name, default)?;
    if value == 0 || value > 86_400 {
        return Err(ConfigError {
            name,
            reason: format!("must be between 1 and 86400, got {value}"),
        });
    }
    Ok(Duration::from_secs(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings_from(pairs: &[(&str, &str)]) -> Result<Option<QueueSettings>, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        QueueSettings::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn the_queue_is_off_unless_enabled() {
        assert!(settings_from(&[]).expect("valid").is_none());
        assert!(settings_from(&[("QUEUE_ENABLED", "false")])
            .expect("valid")
            .is_none());
    }

    #[test]
    fn an_enabled_queue_needs_redis_and_takes_the_documented_defaults() {
        let err = settings_from(&[("QUEUE_ENABLED", "true")]).expect_err("must fail");
        assert_eq!(err.name, "REDIS_URL");
        let settings = settings_from(&[
            ("QUEUE_ENABLED", "true"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .expect("valid")
        .expect("enabled");
        assert_eq!(settings.active_limit, 100);
        assert_eq!(settings.active_ttl, Duration::from_secs(300));
        assert_eq!(settings.token_ttl, Duration::from_secs(600));
    }

    #[test]
    fn bad_queue_settings_name_their_variable() {
        for (name, value) in [
            ("REDIS_URL", "http://not-redis"),
            ("QUEUE_ACTIVE_LIMIT", "0"),
            ("QUEUE_ACTIVE_TTL_SECONDS", "0"),
            ("QUEUE_TOKEN_TTL_SECONDS", "ten"),
            ("QUEUE_KEY_PREFIX", "a{b}"),
        ] {
            let mut pairs = vec![("QUEUE_ENABLED", "true"), (name, value)];
            if name != "REDIS_URL" {
                pairs.push(("REDIS_URL", "redis://127.0.0.1"));
            }
            let err = settings_from(&pairs).expect_err(name);
            assert_eq!(err.name, name);
        }
    }
}
