//! LISTEN for `outbox_events` on a dedicated connection and wake the destination loops, so
//! delivery follows commit within milliseconds. A hint only: if notifications stop (a pooler
//! in transaction mode drops them), the loops' poll interval still delivers everything.

use diesel::prelude::*;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often the socket is checked for notifications; bounds the wake-up delay.
const CHECK_EVERY: Duration = Duration::from_millis(2);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

pub fn spawn(
    database_url: String,
    wakers: Vec<Arc<Notify>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !shutdown.is_cancelled() {
            if let Err(error) = listen(&database_url, &wakers, &shutdown) {
                log::warn!(
                    "outbox listener lost its connection error=\"{}\"; polling covers the gap",
                    crate::error::cause_chain(&error)
                );
                std::thread::sleep(RECONNECT_AFTER);
            }
        }
    })
}

/// Why listening stopped: the connection could not be made, or a statement on it failed.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("cannot connect to listen")]
    Connect(#[from] diesel::ConnectionError),
    #[error("listening failed")]
    Query(#[from] diesel::result::Error),
}

fn listen(
    database_url: &str,
    wakers: &[Arc<Notify>],
    shutdown: &CancellationToken,
) -> Result<(), ListenError> {
    let mut conn = PgConnection::establish(database_url)?;
    diesel::sql_query("LISTEN outbox_events").execute(&mut conn)?;
    log::info!("listening for outbox_events");
    while !shutdown.is_cancelled() {
        let mut woke = false;
        for notification in conn.notifications_iter() {
            notification?;
            woke = true;
        }
        if woke {
            // notify_one stores a permit when a loop is busy, so a wake-up is never missed.
            wakers.iter().for_each(|waker| waker.notify_one());
        }
        std::thread::sleep(CHECK_EVERY);
    }
    Ok(())
}
