//! Where this service's relay sends events, read from the environment (or flags of the same
//! meaning): the data platform (`DATA_PLATFORM_URL`), the user notifier (`NOTIFY_URL`), extra
//! endpoints (`RELAY_EXTRA_DESTINATIONS`) and, when `NATS_URL` is set, a JetStream stream
//! (`NATS_STREAM`, `NATS_STREAM_REPLICAS`, `NATS_DUPLICATE_WINDOW`). Each destination has its
//! own delivery rows, attempts, lease and backoff, so one that is down delays no other.

use super::events::{RESERVATION_CANCELLED, RESERVATION_CONFIRMED};
use super::notifier::notifier_message;
use pg_outbox::db::DbPool;
use pg_outbox::jetstream::{JetStreamConfig, JetStreamDestination, JetStreamError};
use pg_outbox::relay::config::parse_duration;
use pg_outbox::relay::{event_payload, HttpDestination, HttpEndpoint, Relay, RelayConfig};
use pg_outbox::settings::{ConfigError, Settings};
use std::sync::Arc;
use std::time::Duration;

/// The name JetStream deliveries are recorded under.
pub const JETSTREAM: &str = "jetstream";
/// Each event is published to `concert.reservations.<reservation_id>.<event_type>`.
pub const SUBJECT_PREFIX: &str = "concert.reservations";

/// The relay's settings and this service's destinations.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub relay: RelayConfig,
    pub endpoints: Vec<HttpEndpoint>,
    pub jetstream: Option<JetStreamConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartRelayError {
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    #[error("JetStream destination")]
    JetStream(#[from] JetStreamError),
}

impl RelaySettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let relay = RelayConfig::from_lookup(&lookup)?;
        let env = Settings(&lookup);
        let data_platform_url =
            env.parsed_or("DATA_PLATFORM_URL", "http://127.0.0.1:9090".to_string())?;
        let notifier_url = match lookup("NOTIFY_URL").filter(|v| !v.trim().is_empty()) {
            Some(url) => endpoint(&url, "/notifications"),
            // The mock platform serves both paths, so one URL is enough for a demo.
            None => format!("{}/notifications", origin(&data_platform_url)),
        };
        let mut endpoints = vec![
            HttpEndpoint {
                name: "data_platform".into(),
                url: endpoint(&data_platform_url, "/reservations"),
                render: event_payload,
                batch: env.parsed_or("DATA_PLATFORM_BATCH", true)?,
                event_types: Some(reservation_events()),
                bearer_token: None,
            },
            HttpEndpoint {
                name: "notification".into(),
                url: notifier_url,
                render: notifier_message,
                batch: env.parsed_or("NOTIFY_BATCH", true)?,
                event_types: Some(reservation_events()),
                bearer_token: None,
            },
        ];
        endpoints.extend(extra_destinations(lookup("RELAY_EXTRA_DESTINATIONS"))?);
        Ok(RelaySettings {
            relay,
            endpoints,
            jetstream: jetstream_config(&env, &lookup)?,
        })
    }

    /// How many destinations the relay runs.
    pub fn destination_count(&self) -> usize {
        self.endpoints.len() + usize::from(self.jetstream.is_some())
    }

    /// The relay's own pool, sized for these destinations.
    pub fn build_pool(&self) -> Result<DbPool, diesel::r2d2::PoolError> {
        self.relay.build_pool(self.destination_count())
    }

    /// The relay on `pool` (from [`build_pool`](Self::build_pool)) with every destination.
    /// JetStream's stream is checked (and created if missing) here: a stream that could store
    /// a redelivered event twice is refused.
    pub async fn start_relay(&self, pool: DbPool) -> Result<Relay, StartRelayError> {
        let mut relay = Relay::new(self.relay.clone(), pool);
        for endpoint in &self.endpoints {
            let http = HttpDestination::new(endpoint.clone(), &self.relay)?;
            relay = relay.with_destination(Arc::new(http));
        }
        if let Some(jetstream) = &self.jetstream {
            let destination =
                JetStreamDestination::connect(JETSTREAM, jetstream.clone(), &self.relay).await?;
            relay = relay.with_destination(Arc::new(destination));
        }
        Ok(relay)
    }
}

/// What the data platform and the notifier take: the reservation events, and nothing else a
/// service's outbox may carry (the split's commands to the payment side).
fn reservation_events() -> Vec<String> {
    [RESERVATION_CONFIRMED, RESERVATION_CANCELLED]
        .map(str::to_owned)
        .to_vec()
}

/// `NATS_URL=nats://a:4222,nats://b:4222` turns the JetStream destination on.
fn jetstream_config(
    env: &Settings,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<JetStreamConfig>, ConfigError> {
    let Some(urls) = lookup("NATS_URL").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let servers: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    let invalid = |name, reason: &str| ConfigError {
        name,
        reason: reason.into(),
    };
    if let Some(bad) = servers
        .iter()
        .find(|url| url.parse::<async_nats::ServerAddr>().is_err())
    {
        return Err(invalid(
            "NATS_URL",
            &format!("cannot parse {bad:?} as a server address (nats://host:port)"),
        ));
    }
    let stream = env.parsed_or("NATS_STREAM", "CONCERT_EVENTS".to_string())?;
    let valid_stream = !stream.is_empty()
        && stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_stream {
        return Err(invalid(
            "NATS_STREAM",
            "must be letters, digits, '_' or '-' (no spaces, dots or wildcards)",
        ));
    }
    let replicas: usize = env.parsed_or("NATS_STREAM_REPLICAS", 1)?;
    if !(1..=5).contains(&replicas) {
        return Err(invalid("NATS_STREAM_REPLICAS", "must be between 1 and 5"));
    }
    let window = env.parsed_or("NATS_DUPLICATE_WINDOW", "2m".to_string())?;
    let duplicate_window: Duration = parse_duration("NATS_DUPLICATE_WINDOW", &window)?;
    Ok(Some(JetStreamConfig {
        servers,
        stream,
        subject_prefix: SUBJECT_PREFIX.into(),
        replicas,
        duplicate_window,
        event_types: Some(reservation_events()),
    }))
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
fn extra_destinations(raw: Option<String>) -> Result<Vec<HttpEndpoint>, ConfigError> {
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
                && name != JETSTREAM
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name || !url.starts_with("http") {
                return Err(invalid(
                    "name must be [a-z][a-z0-9_]* (not jetstream) and url http(s)://...",
                ));
            }
            Ok(HttpEndpoint {
                name: name.into(),
                url: url.into(),
                render: event_payload,
                batch,
                event_types: None,
                bearer_token: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings_from(pairs: &[(&str, &str)]) -> Result<RelaySettings, ConfigError> {
        let mut map: HashMap<String, String> =
            HashMap::from([("DATABASE_URL".into(), "postgres://x/y".into())]);
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        RelaySettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn credentials_in_a_destination_url_never_reach_the_logs() {
        let settings =
            settings_from(&[("DATA_PLATFORM_URL", "https://relay:s3cret@platform.example")])
                .unwrap();
        let shown = settings.endpoints[0].url_for_logs();
        assert_eq!(shown, "https://platform.example/reservations");
    }

    #[test]
    fn a_bare_platform_url_serves_both_destinations_by_their_paths() {
        let settings = settings_from(&[("DATA_PLATFORM_URL", "http://127.0.0.1:9090")]).unwrap();
        assert_eq!(
            settings.endpoints[0].url,
            "http://127.0.0.1:9090/reservations"
        );
        assert_eq!(
            settings.endpoints[1].url,
            "http://127.0.0.1:9090/notifications"
        );
        let explicit = settings_from(&[
            ("DATA_PLATFORM_URL", "http://h/v1/ingest"),
            ("NOTIFY_URL", "http://n:1/"),
        ])
        .unwrap();
        assert_eq!(explicit.endpoints[0].url, "http://h/v1/ingest");
        assert_eq!(explicit.endpoints[1].url, "http://n:1/notifications");
    }

    #[test]
    fn extra_destinations_are_configuration() {
        let settings = settings_from(&[(
            "RELAY_EXTRA_DESTINATIONS",
            "audit=http://a/x;batch,crm=http://c/y",
        )])
        .unwrap();
        let names: Vec<_> = settings
            .endpoints
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
        assert!(settings_from(&[("RELAY_EXTRA_DESTINATIONS", "Bad=http://x")]).is_err());
        assert!(settings_from(&[("RELAY_EXTRA_DESTINATIONS", "jetstream=http://x")]).is_err());
    }

    #[test]
    fn nats_url_turns_jetstream_on_with_the_documented_defaults() {
        assert!(settings_from(&[]).unwrap().jetstream.is_none());
        let settings =
            settings_from(&[("NATS_URL", "nats://127.0.0.1:4222, nats://127.0.0.1:4223")]).unwrap();
        let jetstream = settings.jetstream.as_ref().unwrap();
        assert_eq!(
            jetstream.servers,
            ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        );
        assert_eq!(jetstream.stream, "CONCERT_EVENTS");
        assert_eq!(jetstream.replicas, 1);
        assert_eq!(jetstream.duplicate_window, Duration::from_secs(120));
        assert_eq!(settings.destination_count(), 3);
        for (name, value) in [
            ("NATS_STREAM", "A.B"),
            ("NATS_STREAM_REPLICAS", "0"),
            ("NATS_DUPLICATE_WINDOW", "soon"),
        ] {
            let error =
                settings_from(&[("NATS_URL", "nats://127.0.0.1:4222"), (name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
