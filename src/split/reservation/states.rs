//! The states of reservation-svc's database, spelled once: a reservation's (the monolith's four
//! and the saga's two) and a payment saga's. The columns' CHECKs spell the same strings, and a
//! test holds the two to each other.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A reservation in the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Held,
    /// Asked of payment-svc, not answered yet: the seat stays taken until the hold's end.
    PaymentPending,
    Confirmed,
    /// payment-svc declined (too few points): the seat is free again, nothing was debited.
    PaymentFailed,
    Expired,
    Cancelled,
}

/// Where a reservation's payment saga is (`saga.rs` has the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaState {
    /// `payment.requested` sent, no answer applied yet.
    Paying,
    /// Paid within the hold: the reservation is confirmed.
    Confirmed,
    /// payment-svc declined: nothing moved.
    Declined,
    /// The reservation was released (cancelled, or its hold ran out or the saga timed out)
    /// and `payment.refund_requested` is on its way.
    Compensating,
    /// payment-svc answered the refund: whatever moved came back.
    Compensated,
}

macro_rules! spelled {
    ($type:ty, $error:literal, $($variant:path => $text:literal),+ $(,)?) => {
        impl $type {
            pub const ALL: &'static [$type] = &[$($variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }

        impl FromStr for $type {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok($variant),)+
                    other => Err(UnknownState(format!("{} {other:?}", $error))),
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Reads the column straight into the enum; a value outside it (which the column's
        /// CHECK forbids) is an error, never a silent default.
        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $type {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {0}")]
pub struct UnknownState(String);

spelled!(ReservationState, "reservation state",
    ReservationState::Held => "held",
    ReservationState::PaymentPending => "payment_pending",
    ReservationState::Confirmed => "confirmed",
    ReservationState::PaymentFailed => "payment_failed",
    ReservationState::Expired => "expired",
    ReservationState::Cancelled => "cancelled",
);

spelled!(SagaState, "saga state",
    SagaState::Paying => "paying",
    SagaState::Confirmed => "confirmed",
    SagaState::Declined => "declined",
    SagaState::Compensating => "compensating",
    SagaState::Compensated => "compensated",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_spelling() {
        for state in ReservationState::ALL {
            assert_eq!(state.as_str().parse::<ReservationState>().unwrap(), *state);
        }
        for state in SagaState::ALL {
            assert_eq!(state.as_str().parse::<SagaState>().unwrap(), *state);
        }
        assert!("paid".parse::<ReservationState>().is_err());
    }
}
