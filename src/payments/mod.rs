//! Paying for a held seat with points: the service's core transaction.

mod held;

use crate::db::cached_sql::cached_sql;
use crate::domain::{EntityId, ReservationStatus};
use crate::reservations::lock_reservation;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Text};
use pg_outbox::waker::WakeRelays;
use serde::Serialize;

/// What a successful payment returns; an idempotent retry returns the same receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct PaymentReceipt {
    #[diesel(sql_type = BigInt)]
    pub payment_id: i64,
    #[diesel(sql_type = BigInt)]
    pub reservation_id: i64,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance: i64,
}

/// A client-chosen key that makes retrying a payment safe: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for IdempotencyKey {
    type Error = crate::domain::InvalidInput;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let visible = value.bytes().all(|b| b.is_ascii_graphic());
        if value.is_empty() || value.len() > 255 || !visible {
            return Err(crate::domain::InvalidInput(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            ));
        }
        Ok(IdempotencyKey(value.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("reservation not found")]
    NotFound,
    #[error("already paid")]
    AlreadyPaid,
    #[error("already cancelled")]
    AlreadyCancelled,
    #[error("hold expired")]
    HoldExpired,
    #[error("insufficient points: balance {balance}, price {price}")]
    InsufficientPoints { balance: i64, price: i64 },
    #[error("idempotency key already used for another reservation")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Database(DieselError),
}

impl From<DieselError> for PaymentError {
    fn from(error: DieselError) -> Self {
        match &error {
            // Two requests raced with one key for different reservations; the loser lands here.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
                if info.constraint_name() == Some("payments_user_id_idempotency_key_key") =>
            {
                PaymentError::IdempotencyKeyReused
            }
            _ => PaymentError::Database(error),
        }
    }
}

/// Pays for reservation `reservation_id` of `user_id`, in one transaction: confirm the
/// reservation (which marks the seat sold), debit the points, record the payment and its
/// ledger row, and write the `reservation.confirmed` outbox event. Nothing outside the database
/// happens in here; the relay delivers the event after commit, once the caller has woken it
/// ([`pg_outbox::waker::RelayWaker::wake`]).
///
/// A payable reservation is paid in a single statement ([`held::pay_held_reservation`]). When
/// that writes nothing, or finds the idempotency key taken, the full transaction below runs and
/// tells the caller why (or returns the receipt of the payment the key already made).
pub fn pay_for_reservation(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
    key: Option<&IdempotencyKey>,
    trace_context: Option<String>,
) -> Result<PaymentReceipt, PaymentError> {
    let paid =
        held::pay_held_reservation(conn, user_id, reservation_id, key, trace_context.as_deref());
    match paid {
        Ok(Some(receipt)) => Ok(receipt),
        Ok(None) | Err(PaymentError::IdempotencyKeyReused) => {
            check_then_pay_under_lock(conn, user_id, reservation_id, key, trace_context.as_deref())
        }
        Err(error) => Err(error),
    }
}

/// [`pay_for_reservation`], then (the payment committed) a wake-up for the relays. Run it as
/// one piece of blocking work, which finishes even if the client has gone, so a committed
/// payment is always followed by its wake-up.
pub fn pay_and_wake_relays(
    conn: &mut PgConnection,
    relays: &dyn WakeRelays,
    user_id: i64,
    reservation_id: EntityId,
    key: Option<&IdempotencyKey>,
    trace_context: Option<String>,
) -> Result<PaymentReceipt, PaymentError> {
    let receipt = pay_for_reservation(conn, user_id, reservation_id, key, trace_context)?;
    relays.wake();
    Ok(receipt)
}

/// The slow fallback, when the single statement wrote nothing or found the key taken: under the
/// reservation's row lock, finds out why (or the receipt the key already made), and re-runs the
/// payment statement if the reservation turns out payable after all.
fn check_then_pay_under_lock(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
    key: Option<&IdempotencyKey>,
    trace_context: Option<&str>,
) -> Result<PaymentReceipt, PaymentError> {
    conn.transaction(|conn| {
        // Concurrent payments (and cancellations) of one reservation queue on this row lock,
        // so exactly one of them sees it `held`.
        let reservation =
            lock_reservation(conn, user_id, reservation_id)?.ok_or(PaymentError::NotFound)?;
        if let Some(key) = key {
            if let Some(earlier) = earlier_payment(conn, user_id, reservation_id, key)? {
                return Ok(earlier);
            }
        }
        match reservation.status {
            ReservationStatus::Held if reservation.hold_lapsed => {
                return Err(PaymentError::HoldExpired)
            }
            ReservationStatus::Held => {}
            ReservationStatus::Confirmed => return Err(PaymentError::AlreadyPaid),
            ReservationStatus::Cancelled => return Err(PaymentError::AlreadyCancelled),
            ReservationStatus::Expired => return Err(PaymentError::HoldExpired),
        }
        // Held and within its hold, under our lock: the payment statement writes everything,
        // or nothing because the balance is short.
        match held::pay_held_reservation(conn, user_id, reservation_id, key, trace_context)? {
            Some(receipt) => Ok(receipt),
            None => Err(PaymentError::InsufficientPoints {
                balance: crate::points::current_balance(conn, user_id)?,
                price: reservation.amount,
            }),
        }
    })
}

/// The receipt of the payment `key` already made for the user's `reservation_id`, if it made
/// one (a key used for another reservation is `IdempotencyKeyReused`). Reads only: the payment
/// answers a retry from it under the reservation's lock, and the API before the waiting queue
/// is asked (a retry whose turn the payment ended).
pub fn earlier_payment(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: EntityId,
    key: &IdempotencyKey,
) -> Result<Option<PaymentReceipt>, PaymentError> {
    match find_payment_by_key(conn, user_id, key)? {
        Some(earlier) if earlier.reservation_id == reservation_id.get() => Ok(Some(earlier)),
        Some(_) => Err(PaymentError::IdempotencyKeyReused),
        None => Ok(None),
    }
}

fn find_payment_by_key(
    conn: &mut PgConnection,
    user_id: i64,
    key: &IdempotencyKey,
) -> QueryResult<Option<PaymentReceipt>> {
    cached_sql(
        "SELECT id AS payment_id, reservation_id, amount, balance_after AS balance \
         FROM payments WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(key.as_str())
    .get_result(conn)
    .optional()
}
