//! Reading settings from a key-value source (the environment, or a test's map): typed values,
//! secrets that never reach a log, and one error line naming the bad setting. The relay's
//! [`RelayConfig`](crate::relay::RelayConfig) reads through it, and a service's own settings
//! may too, so one error type names every bad setting.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

/// A secret that never shows up in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Typed access to a key-value source of settings.
pub struct Settings<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Settings<'_> {
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match (self.0)(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(ConfigError {
                name,
                reason: "is required but not set".into(),
            }),
        }
    }

    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match (self.0)(name) {
            None => Ok(default),
            Some(raw) if raw.trim().is_empty() => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e| ConfigError {
                name,
                reason: format!("cannot parse {raw:?}: {e}"),
            }),
        }
    }
}
