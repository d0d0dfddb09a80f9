//! Cancelling a reservation: the first flow that needs compensation. A paid reservation is
//! refunded in one transaction (points back, payment marked refunded, seat free again, and a
//! `reservation.cancelled` event); a held one is simply released.

use super::{lock_reservation, LockedReservation};
use crate::db::cached_sql::cached_sql;
use crate::domain::{EntityId, ReservationStatus};
use crate::outbox::enqueue_event;
use crate::outbox::events::{ReservationEvent, RESERVATION_CANCELLED};
use crate::points::{credit_points, Credit};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Cancellation {
    pub reservation_id: i64,
    /// The seat, free again for anyone to hold.
    pub seat_id: i64,
    pub status: ReservationStatus,
    /// Points given back (0 when only a hold was released).
    pub refunded: i64,
    pub balance: i64,
}

impl Cancellation {
    /// Whether the cancellation wrote a `reservation.cancelled` event (a paid reservation was
    /// refunded), so the relays should be woken once it has committed.
    pub fn wrote_event(&self) -> bool {
        self.refunded > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("reservation not found")]
    NotFound,
    #[error("already cancelled")]
    AlreadyCancelled,
    #[error("cannot encode the event payload")]
    Payload(#[from] serde_json::Error),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Cancels the caller's reservation in one transaction; wake the relays afterwards when it
/// [wrote an event](Cancellation::wrote_event) (as [`super::SeatHolds::cancel`] does).
pub fn cancel_reservation(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
    trace_context: Option<String>,
) -> Result<Cancellation, CancelError> {
    conn.transaction(|conn| {
        let reservation =
            lock_reservation(conn, user_id, reservation_id)?.ok_or(CancelError::NotFound)?;
        let (refunded, balance) = match reservation.status {
            ReservationStatus::Cancelled => return Err(CancelError::AlreadyCancelled),
            ReservationStatus::Confirmed => refund(conn, &reservation, trace_context)?,
            // A hold (live, lapsed or expired) holds no money: releasing it is enough.
            ReservationStatus::Held | ReservationStatus::Expired => {
                (0, crate::points::current_balance(conn, user_id)?)
            }
        };
        mark_cancelled(conn, reservation.id)?;
        Ok(Cancellation {
            reservation_id: reservation.id,
            seat_id: reservation.seat_id,
            status: ReservationStatus::Cancelled,
            refunded,
            balance,
        })
    })
}

#[derive(QueryableByName)]
struct Refunded {
    #[diesel(sql_type = BigInt)]
    payment_id: i64,
    #[diesel(sql_type = Timestamptz)]
    paid_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    refunded_at: DateTime<Utc>,
}

/// The compensation of a payment: credit the points back, mark the payment refunded, record
/// the ledger row, and tell the platform with a `reservation.cancelled` event. Returns the
/// points given back and the balance they left.
fn refund(
    conn: &mut PgConnection,
    reservation: &LockedReservation,
    trace_context: Option<String>,
) -> Result<(i64, i64), CancelError> {
    let payment: Refunded = cached_sql(
        "UPDATE payments SET status = 'refunded', refunded_at = now() \
         WHERE reservation_id = $1 AND status = 'completed' RETURNING id AS payment_id, paid_at, refunded_at",
    )
    .bind::<BigInt, _>(reservation.id)
    .get_result(conn)?;
    let refund = Credit::Refund {
        payment_id: payment.payment_id,
    };
    let balance = credit_points(conn, reservation.user_id, reservation.amount, refund)?;
    let event = cancelled_event(reservation, payment.refunded_at, payment.paid_at);
    enqueue_event(conn, &event.into_outbox_row(trace_context)?)?;
    Ok((reservation.amount, balance))
}

/// A new `reservation.cancelled` event (fresh id) about a locked reservation.
fn cancelled_event(
    reservation: &LockedReservation,
    refunded_at: DateTime<Utc>,
    paid_at: DateTime<Utc>,
) -> ReservationEvent {
    ReservationEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: RESERVATION_CANCELLED,
        occurred_at: refunded_at,
        reservation_id: reservation.id,
        user_id: reservation.user_id,
        seat_id: reservation.seat_id,
        seat_no: reservation.seat_no,
        schedule_id: reservation.schedule_id,
        concert_id: reservation.concert_id,
        amount: reservation.amount,
        paid_at,
    }
}

/// Leaving `held`/`confirmed` takes the row out of `reservations_one_live_per_seat`, which is
/// what makes the seat available again.
fn mark_cancelled(conn: &mut PgConnection, reservation_id: i64) -> QueryResult<usize> {
    cached_sql("UPDATE reservations SET status = 'cancelled', cancelled_at = now() WHERE id = $1")
        .bind::<BigInt, _>(reservation_id)
        .execute(conn)
}
