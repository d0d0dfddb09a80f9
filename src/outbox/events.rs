//! The events this service publishes, and the exact JSON each one carries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub const RESERVATION_AGGREGATE: &str = "reservation";
pub const RESERVATION_CONFIRMED: &str = "reservation.confirmed";
pub const RESERVATION_CANCELLED: &str = "reservation.cancelled";

/// What the data platform learns about a reservation: the schema of the payload. The
/// top-level fields are a contract with the platform: add none, rename none. Times are
/// RFC 3339 in UTC with microseconds (`2026-11-25T18:55:05.639733Z`), PostgreSQL's precision.
///
/// One builder writes it: the SQL function `reservation_event_payload` (migration
/// `reservation_rules`), which the payment statement (`payments/pay_held_reservation.sql`) and
/// the refund (`reservations/refund_payment.sql`) call inside their own statements. This type
/// is its typed reading; tests hold the function's output to it, field for field and byte for
/// byte.
#[derive(Debug, Clone, Serialize)]
pub struct ReservationEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    #[serde(serialize_with = "rfc3339_micros")]
    pub occurred_at: DateTime<Utc>,
    pub reservation_id: i64,
    pub user_id: i64,
    pub seat_id: i64,
    pub seat_no: i32,
    pub schedule_id: i64,
    pub concert_id: i64,
    pub amount: i64,
    #[serde(serialize_with = "rfc3339_micros")]
    pub paid_at: DateTime<Utc>,
}

fn rfc3339_micros<S: serde::Serializer>(at: &DateTime<Utc>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
