//! The queue's connections to Redis: one multiplexed connection per thread that calls, driven
//! by that thread's runtime. An actix worker runs a runtime of its own on one thread, so its
//! requests, their connection's driver and the socket's wake-ups stay on that thread; a single
//! shared connection made every call hop to the thread driving it and back (measured:
//! `docs/performance.md` decision 24).
//!
//! A connection that breaks, or gets no answer within the call's timeout, is forgotten and the
//! thread's next call connects again: with Redis down every call fails at once (a refused
//! connection) rather than waiting on a reconnection schedule (decision 22).

use super::QueueError;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

thread_local! {
    /// This thread's connection for each queue handle, by the handle's number.
    static OPEN: RefCell<HashMap<u64, MultiplexedConnection>> = RefCell::new(HashMap::new());
}

pub(super) struct Connections {
    client: redis::Client,
    /// Tells this handle's connections from other handles' in `OPEN` (a test process has many).
    handle: u64,
}

impl Connections {
    pub(super) fn new(client: redis::Client) -> Connections {
        static HANDLES: AtomicU64 = AtomicU64::new(0);
        Connections {
            client,
            handle: HANDLES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This thread's connection, made (within `timeout`) when it has none.
    pub(super) async fn get(&self, timeout: Duration) -> Result<MultiplexedConnection, QueueError> {
        let open = OPEN.with(|open| open.borrow().get(&self.handle).cloned());
        if let Some(connection) = open {
            return Ok(connection);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(timeout);
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let connection = match tokio::time::timeout(timeout, connect).await {
            Ok(connection) => connection?,
            Err(_) => return Err(QueueError::Timeout(timeout)),
        };
        OPEN.with(|open| open.borrow_mut().insert(self.handle, connection.clone()));
        Ok(connection)
    }

    /// Drops this thread's connection, so its next call connects again.
    pub(super) fn forget(&self) {
        OPEN.with(|open| open.borrow_mut().remove(&self.handle));
    }
}
