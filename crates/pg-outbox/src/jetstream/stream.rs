//! The stream a JetStream destination publishes to: found or created, and checked to cover
//! resends with its duplicate window, once, the first time the broker answers.

use super::{JetStreamConfig, JetStreamError};
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, stream, ErrorCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// A stream that was found (or made) fit to publish to: the subjects it covers.
#[derive(Debug)]
pub(super) struct CheckedStream {
    pub(super) subjects: Vec<String>,
}

/// The stream this destination publishes to, checked (and created if missing) once, the
/// first time the broker answers; shared by the rounds and the background check.
#[derive(Clone)]
pub(super) struct StreamCheck {
    destination: String,
    context: jetstream::Context,
    config: JetStreamConfig,
    /// The relay's longest gap between two sends of one event: the shortest duplicate window
    /// that keeps a resent event from being stored twice.
    needed_window: Duration,
    checked: Arc<OnceCell<CheckedStream>>,
}

impl StreamCheck {
    /// A check of `config`'s stream for destination `destination`, through `context`, that
    /// refuses a duplicate window shorter than `needed_window`.
    pub(super) fn new(
        destination: &str,
        context: &jetstream::Context,
        config: &JetStreamConfig,
        needed_window: Duration,
    ) -> StreamCheck {
        StreamCheck {
            destination: destination.to_owned(),
            context: context.clone(),
            config: config.clone(),
            needed_window,
            checked: Arc::new(OnceCell::new()),
        }
    }

    pub(super) async fn checked(&self) -> Result<&CheckedStream, JetStreamError> {
        self.checked.get_or_try_init(|| self.check()).await
    }

    /// Checks again every second until the stream is checked or refused.
    pub(super) async fn check_until_done(self) {
        loop {
            match self.checked().await {
                Ok(_) => return,
                Err(refused @ JetStreamError::DuplicateWindowTooShort { .. }) => {
                    let error = crate::error::cause_chain(&refused);
                    return log::error!(
                        "jetstream stream refused destination={} error=\"{error}\"; nothing is published",
                        self.destination
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    async fn check(&self) -> Result<CheckedStream, JetStreamError> {
        let name = &self.config.stream;
        let info = match self.context.get_stream(name).await {
            Ok(stream) => stream.cached_info().clone(),
            Err(error) if is_stream_not_found(&error.kind()) => {
                // Refused before it exists: a stream made with this window could not dedupe.
                self.refuse_short_window(self.config.duplicate_window)?;
                self.create().await?
            }
            Err(error) => return Err(stream_error(name, &error)),
        };
        self.refuse_short_window(info.config.duplicate_window)?;
        log::info!(
            "jetstream stream ready destination={} stream={name} subjects={:?} replicas={} duplicate_window_s={}",
            self.destination,
            info.config.subjects,
            info.config.num_replicas,
            info.config.duplicate_window.as_secs()
        );
        Ok(CheckedStream {
            subjects: info.config.subjects,
        })
    }

    /// A duplicate window shorter than the relay's longest gap between two sends of one
    /// event would let a resent event be stored twice.
    fn refuse_short_window(&self, window: Duration) -> Result<(), JetStreamError> {
        match window < self.needed_window {
            true => Err(JetStreamError::DuplicateWindowTooShort {
                stream: self.config.stream.clone(),
                window,
                needed: self.needed_window,
            }),
            false => Ok(()),
        }
    }

    async fn create(&self) -> Result<stream::Info, JetStreamError> {
        let name = &self.config.stream;
        let created = self
            .context
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                storage: stream::StorageType::File,
                num_replicas: self.config.replicas,
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            })
            .await;
        match created {
            Ok(stream) => {
                log::info!("jetstream stream created stream={name}");
                Ok(stream.cached_info().clone())
            }
            // Another relay created it meanwhile: read what it made.
            Err(error) if matches!(&error.kind(), CreateStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NAME_EXIST) =>
            {
                let stream = self
                    .context
                    .get_stream(name)
                    .await
                    .map_err(|error| stream_error(name, &error))?;
                Ok(stream.cached_info().clone())
            }
            Err(error) => Err(stream_error(name, &error)),
        }
    }
}

fn is_stream_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

fn stream_error(stream: &str, error: &dyn std::error::Error) -> JetStreamError {
    JetStreamError::Stream {
        stream: stream.to_owned(),
        reason: crate::error::cause_chain(error),
    }
}

/// Whether `subject` matches the stream subject `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for wanted in filter.split('.') {
        match (wanted, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (wanted, Some(token)) if wanted == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_as_nats_matches_them() {
        assert!(subject_matches(
            "concert.>",
            "concert.1.reservation.confirmed"
        ));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*.c", "a.b.d"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("other.>", "concert.1.x"));
    }
}
