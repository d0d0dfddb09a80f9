//! Cancelling a reservation: the first flow that needs compensation. A paid reservation is
//! refunded in one transaction (points back, payment marked refunded, seat free again, and a
//! `reservation.cancelled` event); a held one is simply released.

use super::{lock_reservation, LockedReservation};
use crate::db::cached_sql::cached_sql;
use crate::domain::{EntityId, ReservationStatus};
use crate::outbox::events::{RESERVATION_AGGREGATE, RESERVATION_CANCELLED};
use crate::points::{credit_points, Credit};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
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
}

/// The compensation of a payment: mark the payment refunded and tell the platform with a
/// `reservation.cancelled` event (one statement, `refund_payment.sql`), then credit the points
/// back with their ledger row. Returns the points given back and the balance they left.
fn refund(
    conn: &mut PgConnection,
    reservation: &LockedReservation,
    trace_context: Option<String>,
) -> Result<(i64, i64), CancelError> {
    let payment: Refunded = cached_sql(include_str!("refund_payment.sql"))
        .bind::<BigInt, _>(reservation.id)
        .bind::<SqlUuid, _>(uuid::Uuid::new_v4())
        .bind::<Text, _>(RESERVATION_AGGREGATE)
        .bind::<Text, _>(RESERVATION_CANCELLED)
        .bind::<BigInt, _>(reservation.user_id)
        .bind::<BigInt, _>(reservation.seat_id)
        .bind::<Integer, _>(reservation.seat_no)
        .bind::<BigInt, _>(reservation.schedule_id)
        .bind::<BigInt, _>(reservation.concert_id)
        .bind::<BigInt, _>(reservation.amount)
        .bind::<Nullable<Text>, _>(trace_context)
        .get_result(conn)?;
    let refund = Credit::Refund {
        payment_id: payment.payment_id,
    };
    let balance = credit_points(conn, reservation.user_id, reservation.amount, refund)?;
    Ok((reservation.amount, balance))
}

/// Leaving `held`/`confirmed` takes the row out of `reservations_one_live_per_seat`, which is
/// what makes the seat available again.
fn mark_cancelled(conn: &mut PgConnection, reservation_id: i64) -> QueryResult<usize> {
    cached_sql("UPDATE reservations SET status = $2, cancelled_at = now() WHERE id = $1")
        .bind::<BigInt, _>(reservation_id)
        .bind::<Text, _>(ReservationStatus::Cancelled.as_str())
        .execute(conn)
}
