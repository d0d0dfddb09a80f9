//! Types that cannot hold an invalid value. Request bodies and paths deserialize straight into
//! these, so the use cases only ever see valid values; each one also gives the OpenAPI document
//! its schema, bounds included, so the document states exactly what the parser accepts.

mod names;
mod numbers;
mod reservation_status;
mod schedule_start;

pub use names::{ConcertTitle, UserName};
pub use numbers::{ChargeAmount, EntityId, Price, SeatCount};
pub use reservation_status::ReservationStatus;
pub use schedule_start::ScheduleStart;

/// Why a raw value was refused; the message is shown to the client as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidInput(pub String);
