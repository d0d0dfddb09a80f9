//! A destination's loop, and what keeps it running when it panics.
//!
//! A loop that panics is restarted, not left dead and not allowed to take the process down.
//! Restarting is safe because a loop keeps no state of its own: what it has claimed is in the
//! database under a lease, so a fresh loop is as good as a fresh process. It is also better
//! than exiting for a relay serving several destinations: the others keep delivering, where
//! an exit would pause every one of them (and, for the relay inside the API, the API too) each
//! time one loop hit its bug. The rows the dead loop had claimed are neither acknowledged nor
//! released; they wait for their lease (`RELAY_LEASE_SECONDS`) and are claimed again.
//!
//! Each restart is logged with the panic's message and counted in
//! `outbox_relay_loop_restarts_total{destination}`, and waits with the delivery backoff
//! (`RELAY_BACKOFF_BASE_MS` doubling up to `RELAY_BACKOFF_MAX_MS`), so a loop that panics at
//! once every time costs a restart per backoff, not a spinning core. (A build with
//! `panic = "abort"` exits instead, and its supervisor restarts the process.)

use super::backoff;
use super::destination::Destination;
use super::Relay;
use crate::error::cause_chain;
use futures_util::FutureExt;
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A loop that ran this long before it panicked was healthy: its restart waits the shortest
/// backoff again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

impl Relay {
    /// Runs `destination`'s loop until `shutdown`, starting a fresh one after each panic.
    pub(super) async fn keep_delivering(
        self,
        destination: Arc<dyn Destination>,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let mut restarts = Restarts::default();
        loop {
            let started = Instant::now();
            let run =
                self.clone()
                    .run_destination(destination.clone(), wake.clone(), shutdown.clone());
            // Unwind safety: the loop's state dies with it; what outlives it (the pool, the
            // wake-up, the database rows under their lease) is safe to share after a panic.
            let Err(panic) = AssertUnwindSafe(run).catch_unwind().await else {
                return;
            };
            let delay = restarts.after_panic(
                started.elapsed(),
                self.config.backoff_base,
                self.config.backoff_max,
            );
            crate::metrics::global().observe_loop_restart(destination.name());
            log::error!(
                "relay loop panicked destination={} panic=\"{}\" panics_in_a_row={}; restarting in {}ms, its claimed deliveries wait for their lease",
                destination.name(),
                panic_message(panic.as_ref()),
                restarts.in_a_row,
                delay.as_millis()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn run_destination(
        self,
        destination: Arc<dyn Destination>,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        while !shutdown.is_cancelled() {
            match self
                .deliver_next_batch(destination.as_ref(), &shutdown)
                .await
            {
                // There may be more: claim again straight away.
                Ok(round) if round.claimed > 0 => {
                    log::debug!("round destination={} {round:?}", destination.name());
                    continue;
                }
                Ok(_) => {}
                Err(error) => log::error!(
                    "relay round failed destination={} error=\"{}\"",
                    destination.name(),
                    cause_chain(&error)
                ),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
}

/// Panics of one loop in a row, and the wait before its next start.
#[derive(Debug, Default)]
struct Restarts {
    in_a_row: i32,
}

impl Restarts {
    /// The wait before restarting a loop that panicked after running for `ran`.
    fn after_panic(&mut self, ran: Duration, base: Duration, max: Duration) -> Duration {
        self.in_a_row = if ran >= HEALTHY_RUN {
            1
        } else {
            self.in_a_row.saturating_add(1)
        };
        backoff::delay_after(self.in_a_row, base, max, None)
    }
}

/// What `panic!` was given: its message, when it was one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn a_loop_that_keeps_panicking_waits_longer_each_time_and_a_healthy_run_resets_the_wait() {
        let mut restarts = Restarts::default();
        let quick = Duration::from_millis(1);
        let waits: Vec<Duration> = (0..4)
            .map(|_| restarts.after_panic(quick, BASE, MAX))
            .collect();
        // The ceilings double (100, 200, 400, 800 ms); jitter keeps each in its upper half.
        for (wait, ceiling_ms) in waits.iter().zip([100, 200, 400, 800]) {
            assert!(
                *wait >= Duration::from_millis(ceiling_ms / 2)
                    && *wait <= Duration::from_millis(ceiling_ms),
                "{waits:?}"
            );
        }
        assert!(restarts.after_panic(HEALTHY_RUN, BASE, MAX) <= BASE);
        assert_eq!(restarts.in_a_row, 1);
    }

    #[test]
    fn the_panic_message_is_found_in_either_payload() {
        let literal: Box<dyn Any + Send> = Box::new("boom");
        let formatted: Box<dyn Any + Send> = Box::new(format!("boom {}", 7));
        let other: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(literal.as_ref()), "boom");
        assert_eq!(panic_message(formatted.as_ref()), "boom 7");
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
