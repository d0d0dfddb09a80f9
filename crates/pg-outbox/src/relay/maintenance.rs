//! Housekeeping beside the delivery loops: statistics the claim can trust, and retention.

use super::{store, Relay};
use crate::error::cause_chain;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often sent events past retention are deleted.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// How often the deliveries' statistics are checked against the rows they describe.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

impl Relay {
    /// Checks the deliveries' statistics every second and refreshes them when a burst has
    /// left them behind; deletes sent events past retention at start and then every minute.
    pub(super) async fn run_maintenance(self, shutdown: CancellationToken) {
        let mut retention_due = Instant::now();
        loop {
            match self.with_db(store::refresh_stale_statistics).await {
                Ok(true) => log::info!("outbox_deliveries statistics refreshed after a burst"),
                Ok(false) => {}
                Err(error) => log::warn!(
                    "cannot check outbox_deliveries statistics error=\"{}\"",
                    cause_chain(&error)
                ),
            }
            if Instant::now() >= retention_due {
                retention_due = Instant::now() + RETENTION_INTERVAL;
                self.delete_expired_events().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(STATISTICS_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn delete_expired_events(&self) {
        let retention = self.config.retention;
        match self
            .with_db(move |conn| store::delete_sent_events(conn, retention))
            .await
        {
            Ok(0) => {}
            Ok(deleted) => log::info!("outbox retention deleted={deleted}"),
            Err(error) => log::warn!("outbox retention failed error=\"{}\"", cause_chain(&error)),
        }
    }
}
