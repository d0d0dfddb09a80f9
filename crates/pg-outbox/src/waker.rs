//! Waking relays after commits, off the request path.

use crate::db::DbPool;
use crate::error::cause_chain;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Sends `NOTIFY outbox_events` (see [`crate::wake_relays`]) from a background task, so a
/// request that wrote an event answers as soon as its transaction commits. Bursts coalesce:
/// wake-ups that arrive while a NOTIFY is on its way are answered by one more NOTIFY, sent
/// after it. Every commit is therefore followed by a NOTIFY that starts after the commit,
/// which is all a relay needs to find the event, and a burst of commits costs PostgreSQL a
/// few notifications instead of one each. A wake-up lost with the process (a crash right after
/// a commit) is covered by the relays' polling, as any lost notification is. The task runs
/// until [`stop`](RelayWaker::stop).
#[derive(Clone)]
pub struct RelayWaker {
    inner: Arc<Inner>,
}

struct Inner {
    /// A wake-up arrived that no NOTIFY started after it yet answers.
    pending: AtomicBool,
    wake: Notify,
    /// Cancelled by `stop`.
    stop: CancellationToken,
    /// Cancelled by the task as it ends, so `stop` can wait for it.
    stopped: CancellationToken,
}

impl RelayWaker {
    /// Starts the background task on the current tokio runtime; it notifies with `pool`'s
    /// connections, one at a time.
    pub fn spawn(pool: DbPool) -> RelayWaker {
        let inner = Arc::new(Inner {
            pending: AtomicBool::new(false),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            stopped: CancellationToken::new(),
        });
        tokio::spawn(pg_notify_on_wake(inner.clone(), pool));
        RelayWaker { inner }
    }

    /// Asks for a NOTIFY after this point; returns at once. Call it after the commit.
    pub fn wake(&self) {
        if !self.inner.pending.swap(true, Ordering::AcqRel) {
            self.inner.wake.notify_one();
        }
    }

    /// Whether a wake-up is still waiting for the task to take it: false once every wake-up
    /// so far is answered by a NOTIFY that has started (or is about to). For health checks
    /// and tests that must know the task has taken a wake-up.
    pub fn has_unanswered_wake_up(&self) -> bool {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Ends the background task and returns once it has ended. A wake-up asked for before
    /// the call is still answered; later ones are not (polling covers them), so call it once
    /// the server has stopped answering requests.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        self.inner.stopped.cancelled().await;
    }
}

/// What a use case that wrote an event calls once its transaction has committed.
pub trait WakeRelays: Send + Sync {
    fn wake(&self);
}

impl WakeRelays for RelayWaker {
    fn wake(&self) {
        RelayWaker::wake(self)
    }
}

/// For a caller that runs no waker and leaves delivery to the relays' polling
/// (a benchmark's baseline, a batch job).
pub struct NoWakeUps;

impl WakeRelays for NoWakeUps {
    fn wake(&self) {}
}

async fn pg_notify_on_wake(inner: Arc<Inner>, pool: DbPool) {
    let _ended = inner.stopped.clone().drop_guard();
    loop {
        let stopping = tokio::select! {
            _ = inner.wake.notified() => false,
            _ = inner.stop.cancelled() => true,
        };
        // On stop, a wake-up still waiting for its NOTIFY gets it before the task ends.
        if stopping && !inner.pending.load(Ordering::Acquire) {
            return;
        }
        // Cleared before the NOTIFY starts: a wake-up from here on asks for another one.
        inner.pending.store(false, Ordering::Release);
        pg_notify(&pool).await;
        if stopping {
            return;
        }
    }
}

/// One `NOTIFY outbox_events` on a pooled connection, off the async workers.
async fn pg_notify(pool: &DbPool) {
    let pool = pool.clone();
    let sent = tokio::task::spawn_blocking(move || match pool.get() {
        Ok(mut conn) => crate::wake_relays(&mut conn),
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
