//! The events this service publishes, and the exact JSON each one carries.

use super::NewEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub const RESERVATION_AGGREGATE: &str = "reservation";
pub const RESERVATION_CONFIRMED: &str = "reservation.confirmed";
pub const RESERVATION_CANCELLED: &str = "reservation.cancelled";

/// What the data platform learns about a reservation. The top-level fields are a contract
/// with the platform: add none, rename none.
#[derive(Debug, Clone, Serialize)]
pub struct ReservationEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub reservation_id: i64,
    pub user_id: i64,
    pub seat_id: i64,
    pub seat_no: i32,
    pub schedule_id: i64,
    pub concert_id: i64,
    pub amount: i64,
    pub paid_at: DateTime<Utc>,
}

impl ReservationEvent {
    /// A new event (fresh id) of `event_type` about a locked reservation.
    pub fn about(
        reservation: &crate::reservations::LockedReservation,
        event_type: &'static str,
        occurred_at: DateTime<Utc>,
        paid_at: DateTime<Utc>,
    ) -> ReservationEvent {
        ReservationEvent {
            event_id: Uuid::new_v4(),
            event_type,
            occurred_at,
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

    pub fn into_outbox_row(
        self,
        trace_context: Option<String>,
    ) -> Result<NewEvent, serde_json::Error> {
        Ok(NewEvent {
            event_id: self.event_id,
            aggregate_type: RESERVATION_AGGREGATE,
            aggregate_id: self.reservation_id,
            event_type: self.event_type,
            payload: serde_json::to_value(&self)?,
            trace_context,
        })
    }
}
