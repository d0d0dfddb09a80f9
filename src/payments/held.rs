//! The payment of a reservation that is payable as it stands, as one statement.

use super::{IdempotencyKey, PaymentError, PaymentReceipt};
use crate::db::cached_sql::cached_sql;
use crate::domain::{EntityId, ReservationStatus};
use crate::outbox::events::{RESERVATION_AGGREGATE, RESERVATION_CONFIRMED};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};

/// The whole payment as one statement (`pay_held_reservation.sql`: its steps, and its binds
/// named in its first comment).
const PAY_HELD_RESERVATION: &str = include_str!("pay_held_reservation.sql");

/// Pays for the caller's reservation if it is payable as it stands, in one autocommit
/// statement: one round trip, and no transaction left open between round trips while other
/// payments wait for the rows it locks. `None` means nothing was written because the
/// reservation is not the caller's, not held, past its hold, or the balance is short; the
/// caller then finds out which in the full transaction.
pub(super) fn pay_held_reservation(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
    key: Option<&IdempotencyKey>,
    trace_context: Option<&str>,
) -> Result<Option<PaymentReceipt>, PaymentError> {
    Ok(cached_sql(PAY_HELD_RESERVATION)
        .bind::<BigInt, _>(reservation_id.get())
        .bind::<BigInt, _>(user_id)
        .bind::<Nullable<Text>, _>(key.map(IdempotencyKey::as_str))
        .bind::<SqlUuid, _>(uuid::Uuid::new_v4())
        .bind::<Text, _>(RESERVATION_AGGREGATE)
        .bind::<Text, _>(RESERVATION_CONFIRMED)
        .bind::<Nullable<Text>, _>(trace_context)
        .bind::<Text, _>(ReservationStatus::Confirmed.as_str())
        .get_result(conn)
        .optional()?)
}
