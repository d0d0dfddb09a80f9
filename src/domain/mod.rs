//! Types that cannot hold an invalid value. Handlers parse raw input into these; the use cases
//! only ever see valid values.

mod names;
mod numbers;
mod reservation_status;

pub use names::{ConcertTitle, UserName};
pub use numbers::{ChargeAmount, EntityId, Price, SeatCount};
pub use reservation_status::ReservationStatus;

/// Why a raw value was refused; the message is shown to the client as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidInput(pub String);
