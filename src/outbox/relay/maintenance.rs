//! Housekeeping beside the delivery loops: repair lost `sent_at` stamps, apply retention.

use super::{store, Relay};
use crate::error::cause_chain;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often missing `sent_at` stamps are repaired (cheap: it reads unsent events only).
const REPAIR_INTERVAL: Duration = Duration::from_secs(2);
/// How often sent events past retention are deleted.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

impl Relay {
    /// Repairs lost `sent_at` stamps every few seconds and applies retention every minute.
    pub(super) async fn run_maintenance(self, shutdown: CancellationToken) {
        let mut last_retention: Option<std::time::Instant> = None;
        loop {
            let retention = self.config.retention;
            let retention_due = last_retention.is_none_or(|at| at.elapsed() >= RETENTION_INTERVAL);
            if retention_due {
                last_retention = Some(std::time::Instant::now());
            }
            let work = self.with_db(move |conn| {
                let deleted = if retention_due {
                    store::delete_sent_events(conn, retention)?
                } else {
                    0
                };
                Ok((deleted, store::repair_sent_stamps(conn)?))
            });
            match work.await {
                Ok((0, 0)) => {}
                Ok((deleted, repaired)) => {
                    log::info!("outbox maintenance deleted={deleted} repaired_sent_at={repaired}")
                }
                Err(error) => log::warn!(
                    "outbox maintenance failed error=\"{}\"",
                    cause_chain(&error)
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(REPAIR_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
