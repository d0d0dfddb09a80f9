//! Holding a seat, reading a reservation back, and cancelling it.

mod cancel;
mod holds;
mod taken_seats;
pub use cancel::{cancel_reservation, CancelError, Cancellation};
pub use holds::{Admitted, SeatHolds};

use crate::db::cached_sql::cached_sql;
use crate::domain::{EntityId, ReservationStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct Reservation {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Integer)]
    pub seat_no: i32,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Text)]
    pub status: ReservationStatus,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Timestamptz)]
    pub held_until: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub payment_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("seat not found")]
    UnknownSeat,
    #[error("seat is held or sold")]
    SeatUnavailable,
    #[error("hold admission is closed")]
    AdmissionClosed(#[from] tokio::sync::AcquireError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// What one hold statement found: the seat (no row at all if there is no such seat) and,
/// when the hold won, the new reservation.
#[derive(QueryableByName)]
struct HoldAttempt {
    #[diesel(sql_type = BigInt)]
    seat_id: i64,
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = BigInt)]
    schedule_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    held_until: Option<DateTime<Utc>>,
}

/// The hold statement (`hold_seat.sql`, whose comment names its binds). Public so tests can
/// EXPLAIN it.
pub const HOLD_SEAT: &str = include_str!("hold_seat.sql");

/// Holds `seat_id` for `user_id` until `ttl` from now, in one statement (one round trip, for
/// winners and losers alike).
///
/// The partial unique index `reservations_one_live_per_seat` is what makes this safe: of any
/// number of racing holds exactly one inserts, the rest hit the conflict and get the seat row
/// without a reservation (they wait only for the winner's single statement, never for a long
/// transaction). A hold whose time ran out is first marked `expired`, so an unswept expired
/// hold never blocks the seat; the `expired` step runs first because the insert reads its row
/// count.
pub fn hold_seat(
    conn: &mut PgConnection,
    user_id: i64,
    seat_id: EntityId,
    ttl: Duration,
) -> Result<Reservation, HoldError> {
    let attempt: Option<HoldAttempt> = cached_sql(HOLD_SEAT)
        .bind::<BigInt, _>(seat_id.get())
        .bind::<BigInt, _>(user_id)
        .bind::<Double, _>(ttl.as_secs_f64())
        .bind::<Text, _>(ReservationStatus::Expired.as_str())
        .bind::<Text, _>(ReservationStatus::Held.as_str())
        .get_result(conn)
        .optional()?;
    let attempt = attempt.ok_or(HoldError::UnknownSeat)?;
    match (attempt.id, attempt.amount, attempt.held_until) {
        (Some(id), Some(amount), Some(held_until)) => Ok(Reservation {
            id,
            seat_id: attempt.seat_id,
            seat_no: attempt.seat_no,
            schedule_id: attempt.schedule_id,
            status: ReservationStatus::Held,
            amount,
            held_until,
            payment_id: None,
        }),
        _ => Err(HoldError::SeatUnavailable),
    }
}

/// The caller's reservation `id`; `None` for an unknown id or someone else's reservation, so
/// a stranger cannot even learn that it exists. A hold whose time ran out reads as `expired`.
pub fn find_reservation(
    conn: &mut PgConnection,
    user_id: i64,
    id: EntityId,
) -> QueryResult<Option<Reservation>> {
    cached_sql(
        "SELECT r.id, r.seat_id, s.seat_no, s.schedule_id, \
                reservation_status_at(r.status, r.held_until, now()) AS status, \
                r.amount, r.held_until, p.id AS payment_id \
         FROM reservations r \
         JOIN seats s ON s.id = r.seat_id \
         LEFT JOIN payments p ON p.reservation_id = r.id \
         WHERE r.id = $1 AND r.user_id = $2",
    )
    .bind::<BigInt, _>(id.get())
    .bind::<BigInt, _>(user_id)
    .get_result(conn)
    .optional()
}

/// A reservation locked `FOR UPDATE` for a use case that changes it, with what its events need.
#[derive(QueryableByName)]
pub struct LockedReservation {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Integer)]
    pub seat_no: i32,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub concert_id: i64,
    #[diesel(sql_type = Text)]
    pub status: ReservationStatus,
    #[diesel(sql_type = Bool)]
    pub hold_lapsed: bool,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
}

/// Locks the caller's reservation row. Payments and cancellations of one reservation queue on
/// this lock, so they see each other's result and write its events in commit order. Someone
/// else's reservation is `None`, like an unknown one.
pub fn lock_reservation(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
) -> QueryResult<Option<LockedReservation>> {
    cached_sql(
        "SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.status, \
                reservation_hold_lapsed(r.status, r.held_until, now()) AS hold_lapsed, r.amount \
         FROM reservations r \
         JOIN seats s ON s.id = r.seat_id \
         JOIN schedules sc ON sc.id = s.schedule_id \
         WHERE r.id = $1 AND r.user_id = $2 \
         FOR UPDATE OF r",
    )
    .bind::<BigInt, _>(reservation_id.get())
    .bind::<BigInt, _>(user_id)
    .get_result(conn)
    .optional()
}
