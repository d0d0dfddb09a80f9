//! The events this service publishes, and the exact JSON each one carries.

use super::NewEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub const RESERVATION_AGGREGATE: &str = "reservation";
pub const RESERVATION_CONFIRMED: &str = "reservation.confirmed";
pub const RESERVATION_CANCELLED: &str = "reservation.cancelled";

/// What the data platform learns about a reservation. The top-level fields are a contract
/// with the platform: add none, rename none. Times are RFC 3339 in UTC with microseconds
/// (`2026-11-25T18:55:05.639733Z`), PostgreSQL's precision; the payment statement writes the
/// same JSON object in SQL (`payments::held`), and a test holds the two to each other.
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

impl ReservationEvent {
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
