//! Holding a seat the way a rush needs it, and cancelling: the use cases around the hold
//! statement that keep a sale opening from taking every connection, answer its losers from
//! memory, and wake the relays after a refund.

use super::taken_seats::TakenSeats;
use super::{cancel_reservation, hold_seat, CancelError, Cancellation, HoldError, Reservation};
use crate::domain::EntityId;
use diesel::PgConnection;
use pg_outbox::waker::WakeRelays;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The holds of one process: how many run at once, the seats seen taken, and how long a hold
/// lasts. Shared by every request (and by `concert-bench`'s SQL baseline).
pub struct SeatHolds {
    /// Holds queue here, without a thread or a connection, once `HOLD_CONCURRENCY` of them
    /// are running, so a rush of holds (a sale opening) never takes every pooled connection:
    /// payments of seats already held get one at once. A hold that waits costs its user a
    /// moment; a payment that waits can outlive its hold and lose the seat.
    permits: Arc<Semaphore>,
    /// Seats seen taken in the last second: a rush's losers are answered from here.
    taken_seats: TakenSeats,
    ttl: Duration,
}

/// A hold let through admission: the seat was not seen taken, and (from
/// [`SeatHolds::admit`]) one of the permits is held until the hold statement has answered.
pub struct Admitted {
    seat_id: EntityId,
    permit: Option<OwnedSemaphorePermit>,
}

impl SeatHolds {
    pub fn new(concurrency: usize, ttl: Duration) -> SeatHolds {
        SeatHolds {
            permits: Arc::new(Semaphore::new(concurrency)),
            taken_seats: TakenSeats::default(),
            ttl,
        }
    }

    /// Waits for a permit, holding no thread and no connection. A seat seen taken within the
    /// last second is refused at once, and again once the permit is granted: it may have been
    /// taken while the hold queued.
    pub async fn admit(&self, seat_id: EntityId) -> Result<Admitted, HoldError> {
        self.refuse_if_taken(seat_id)?;
        let permit = self.permits.clone().acquire_owned().await?;
        self.refuse_if_taken(seat_id)?;
        Ok(Admitted {
            seat_id,
            permit: Some(permit),
        })
    }

    /// Admission for a caller that has a connection of its own and so nothing to queue for
    /// (`concert-bench`'s SQL baseline): only the taken-seats memory is asked.
    pub fn admit_unqueued(&self, seat_id: EntityId) -> Result<Admitted, HoldError> {
        self.refuse_if_taken(seat_id)?;
        Ok(Admitted {
            seat_id,
            permit: None,
        })
    }

    /// Holds the admitted seat for `user_id` ([`hold_seat`]), then frees the permit and
    /// remembers what the database answered. Run it as one piece of blocking work, which runs
    /// to its end even if the client has gone, so a dropped request never frees its permit
    /// while its statement still holds a connection.
    pub fn hold(
        &self,
        conn: &mut PgConnection,
        admitted: Admitted,
        user_id: i64,
    ) -> Result<Reservation, HoldError> {
        let Admitted { seat_id, permit } = admitted;
        let held = hold_seat(conn, user_id, seat_id, self.ttl);
        drop(permit);
        match &held {
            Ok(reservation) => self
                .taken_seats
                .remember(reservation.seat_id, Some(reservation.held_until)),
            Err(HoldError::SeatUnavailable) => self.taken_seats.remember(seat_id.get(), None),
            Err(_) => {}
        }
        held
    }

    /// Cancels the caller's reservation ([`cancel_reservation`]); once it has committed, wakes
    /// the relays if it wrote an event and forgets the seat, now free. Run it as one piece of
    /// blocking work, so a committed cancellation is always followed by both.
    pub fn cancel(
        &self,
        conn: &mut PgConnection,
        relays: &dyn WakeRelays,
        user_id: i64,
        reservation_id: EntityId,
        trace_context: Option<String>,
    ) -> Result<Cancellation, CancelError> {
        let cancellation = cancel_reservation(conn, user_id, reservation_id, trace_context)?;
        if cancellation.wrote_event() {
            relays.wake();
        }
        self.taken_seats.forget(cancellation.seat_id);
        Ok(cancellation)
    }

    /// Forgets that `seat_id` was seen taken: another use case freed it (the split's saga
    /// released it after a declined or compensated payment).
    pub fn seat_released(&self, seat_id: i64) {
        self.taken_seats.forget(seat_id);
    }

    fn refuse_if_taken(&self, seat_id: EntityId) -> Result<(), HoldError> {
        match self.taken_seats.is_taken(seat_id.get()) {
            true => Err(HoldError::SeatUnavailable),
            false => Ok(()),
        }
    }
}
