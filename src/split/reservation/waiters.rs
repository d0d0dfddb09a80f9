//! Requests waiting for a saga to move (`POST /reservations/{id}/payment` answers 200 when the
//! saga is done within `SAGA_SYNC_WAIT_MS`): a reply applied in this process wakes them at
//! once; a reply applied by another reservation-svc process is seen at the next look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a waiter looks again without a wake-up.
pub const LOOK_AGAIN: Duration = Duration::from_millis(100);

#[derive(Default, Clone)]
pub struct Waiters {
    by_reservation: Arc<Mutex<HashMap<i64, Arc<Notify>>>>,
}

impl Waiters {
    /// Waits until `reservation_id`'s saga is woken or [`LOOK_AGAIN`] passes.
    pub async fn wait(&self, reservation_id: i64) {
        let notify = self
            .lock()
            .entry(reservation_id)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        let _ = tokio::time::timeout(LOOK_AGAIN, notify.notified()).await;
        // The last waiter out removes the entry (the map holds one reference).
        let mut map = self.lock();
        if map
            .get(&reservation_id)
            .is_some_and(|n| Arc::strong_count(n) <= 2)
        {
            map.remove(&reservation_id);
        }
    }

    /// Wakes whoever waits on `reservation_id`'s saga (a reply was applied to it).
    pub fn wake(&self, reservation_id: i64) {
        if let Some(notify) = self.lock().get(&reservation_id) {
            notify.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Notify>>> {
        self.by_reservation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
