//! Waking relays after commits, off the request path.

use crate::db::DbPool;
use crate::error::cause_chain;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Sends `NOTIFY outbox_events` (see [`super::wake_relays`]) from a background task, so a
/// request that wrote an event answers as soon as its transaction commits. Bursts coalesce:
/// wake-ups that arrive while a NOTIFY is on its way are answered by one more NOTIFY, sent
/// after it. Every commit is therefore followed by a NOTIFY that starts after the commit,
/// which is all a relay needs to find the event, and a burst of payments costs PostgreSQL a
/// few notifications instead of one each. A wake-up lost with the process (a crash right after
/// a commit) is covered by the relays' polling, as any lost notification is.
#[derive(Clone)]
pub struct RelayWaker {
    inner: Arc<Inner>,
}

struct Inner {
    /// A wake-up arrived that no NOTIFY started after it yet answers.
    pending: AtomicBool,
    wake: Notify,
}

impl RelayWaker {
    /// Starts the background task on the current tokio runtime; it notifies with `pool`'s
    /// connections, one at a time, and ends with the runtime.
    pub fn spawn(pool: DbPool) -> RelayWaker {
        let inner = Arc::new(Inner {
            pending: AtomicBool::new(false),
            wake: Notify::new(),
        });
        tokio::spawn(notify_on_wake(inner.clone(), pool));
        RelayWaker { inner }
    }

    /// Asks for a NOTIFY after this point; returns at once. Call it after the commit.
    pub fn wake(&self) {
        if !self.inner.pending.swap(true, Ordering::AcqRel) {
            self.inner.wake.notify_one();
        }
    }
}

async fn notify_on_wake(inner: Arc<Inner>, pool: DbPool) {
    loop {
        inner.wake.notified().await;
        // Cleared before the NOTIFY starts: a wake-up from here on asks for another one.
        inner.pending.store(false, Ordering::Release);
        let pool = pool.clone();
        let sent = tokio::task::spawn_blocking(move || match pool.get() {
            Ok(mut conn) => super::wake_relays(&mut conn),
            Err(error) => log::warn!(
                "cannot notify relays (polling will deliver) error=\"{}\"",
                cause_chain(&error)
            ),
        })
        .await;
        if let Err(error) = sent {
            log::warn!(
                "relay wake-up task failed error=\"{}\"",
                cause_chain(&error)
            );
        }
    }
}
