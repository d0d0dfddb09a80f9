//! Housekeeping beside the delivery loops: retention.

use super::{store, Relay};
use crate::error::cause_chain;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often sent events past retention are deleted.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

impl Relay {
    /// Deletes sent events past retention at start and then every minute.
    pub(super) async fn run_maintenance(self, shutdown: CancellationToken) {
        loop {
            let retention = self.config.retention;
            match self
                .with_db(move |conn| store::delete_sent_events(conn, retention))
                .await
            {
                Ok(0) => {}
                Ok(deleted) => log::info!("outbox retention deleted={deleted}"),
                Err(error) => {
                    log::warn!("outbox retention failed error=\"{}\"", cause_chain(&error))
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
