//! The payment saga, orchestrated here. One row per reservation (`payment_sagas`) holds where
//! it is; each transition below is one local transaction that changes the reservation and the
//! saga together and writes its message to the outbox (the relay delivers it after commit).
//!
//! | from            | on                                        | to           | reservation      | writes                                            |
//! |-----------------|-------------------------------------------|--------------|------------------|---------------------------------------------------|
//! | (held, in time) | the client pays                           | paying       | payment_pending  | `payment.requested`                               |
//! | paying          | `payment.completed`, hold still running   | confirmed    | confirmed        | `reservation.confirmed` (platform)                |
//! | paying          | `payment.completed`, hold over            | compensating | expired          | `payment.refund_requested`                        |
//! | paying          | `payment.declined`                        | declined     | payment_failed   |                                                   |
//! | paying          | hold over, or no answer for the timeout   | compensating | expired          | `payment.refund_requested`                        |
//! | paying          | the client cancels                        | compensating | cancelled        | `payment.refund_requested`                        |
//! | confirmed       | the client cancels                        | compensating | cancelled        | `payment.refund_requested`, `reservation.cancelled` |
//! | compensating    | `payment.refunded`, or `payment.declined` | compensated  | (unchanged)      |                                                   |
//! | any other       | a reply                                   | (unchanged)  | (unchanged)      | (a repeated or overtaken reply changes nothing)   |
//!
//! Compensations run in reverse order of the steps: the seat is released here, in the
//! transaction that starts the compensation, and the refund follows on payment-svc. A refund
//! requested for a payment that has not happened voids it there, so a payment asked for
//! earlier and delivered later is declined: money never stays with a released seat.

use super::states::{ReservationState, SagaState};
use crate::db::cached_sql::cached_sql;
use crate::outbox::events::{RESERVATION_AGGREGATE, RESERVATION_CONFIRMED};
use crate::split::bus::ApplyError;
use crate::split::messages::{payment_key, Envelope, Message};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use pg_outbox::enqueue_event;
use pg_outbox::inbox::Consumed;
use serde::Serialize;

/// The name reservation-svc records its inbox rows (and its JetStream consumer) under.
pub const CONSUMER: &str = "reservation-svc";

/// A reservation and its saga, as the client and the transitions see them.
#[derive(Debug, Clone, QueryableByName)]
pub struct Saga {
    #[diesel(sql_type = BigInt)]
    pub reservation_id: i64,
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Integer)]
    pub seat_no: i32,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Timestamptz)]
    pub held_until: DateTime<Utc>,
    /// The stored state.
    #[diesel(sql_type = Text)]
    pub stored: ReservationState,
    /// The state a reader sees now (a hold or a pending payment past its hold reads expired).
    #[diesel(sql_type = Text)]
    pub status: ReservationState,
    #[diesel(sql_type = Bool)]
    pub hold_active: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub saga: Option<SagaState>,
    #[diesel(sql_type = Nullable<Text>)]
    pub idempotency_key: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub balance_after: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub declined_reason: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub refunded_amount: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub refund_balance: Option<i64>,
}

/// The reservation as `GET /reservations/{id}` shows it: the monolith's shape, with the saga's
/// states among its statuses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    pub id: i64,
    pub seat_id: i64,
    pub seat_no: i32,
    pub schedule_id: i64,
    pub status: ReservationState,
    pub amount: i64,
    pub held_until: DateTime<Utc>,
    pub payment_id: Option<i64>,
}

impl Saga {
    pub fn view(&self) -> ReservationView {
        ReservationView {
            id: self.reservation_id,
            seat_id: self.seat_id,
            seat_no: self.seat_no,
            schedule_id: self.schedule_id,
            status: self.status,
            amount: self.amount,
            held_until: self.held_until,
            payment_id: self.payment_id,
        }
    }
}

const READ: &str = include_str!("read_saga.sql");

/// The user's reservation `reservation_id` and its saga, if any; `lock` locks the reservation
/// for the rest of the transaction (every change to a saga locks its reservation first).
pub fn find(
    conn: &mut PgConnection,
    reservation_id: i64,
    user_id: Option<i64>,
    lock: bool,
) -> QueryResult<Option<Saga>> {
    if lock {
        // Lock first, then read in a statement of its own: its snapshot then sees everything
        // the transaction that held the lock committed. Reading under `FOR UPDATE` would re-read
        // only the reservation's row after the wait, and miss a saga row inserted meanwhile (a
        // cancel racing the payment would not see the payment it has to compensate).
        cached_sql("SELECT id FROM reservations WHERE id = $1 FOR UPDATE")
            .bind::<BigInt, _>(reservation_id)
            .execute(conn)?;
    }
    cached_sql(READ)
        .bind::<BigInt, _>(reservation_id)
        .bind::<Nullable<BigInt>, _>(user_id)
        .get_result(conn)
        .optional()
}

/// Why a payment was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no such reservation")]
    NotFound,
    #[error("the idempotency key was used for another reservation")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Starts the reservation's payment saga if its hold is running and none has started: the
/// reservation becomes `payment_pending` and `payment.requested` goes to payment-svc, in one
/// transaction. Either way, returns the reservation and its saga as they now are, for the
/// caller to answer from (or to wait on), and whether this call started it.
pub fn start_payment(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: i64,
    idempotency_key: Option<&str>,
    trace_context: Option<String>,
) -> Result<(Saga, bool), StartError> {
    conn.transaction(|conn| {
        if let Some(key) = idempotency_key {
            if key_used_elsewhere(conn, user_id, reservation_id, key)? {
                return Err(StartError::KeyReused);
            }
        }
        let saga = find(conn, reservation_id, Some(user_id), true)?.ok_or(StartError::NotFound)?;
        if saga.saga.is_some() || !saga.hold_active {
            return Ok((saga, false));
        }
        set_reservation(conn, reservation_id, ReservationState::PaymentPending)?;
        cached_sql(
            "INSERT INTO payment_sagas (reservation_id, user_id, state, idempotency_key) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(reservation_id)
        .bind::<BigInt, _>(user_id)
        .bind::<Text, _>(SagaState::Paying.as_str())
        .bind::<Nullable<Text>, _>(idempotency_key)
        .execute(conn)?;
        let command = Message::PaymentRequested {
            reservation_id,
            user_id,
            amount: saga.amount,
            payment_key: payment_key(reservation_id),
        };
        enqueue_event(conn, &command.into_event(trace_context))?;
        let started = find(conn, reservation_id, Some(user_id), false)?;
        Ok((started.ok_or(StartError::NotFound)?, true))
    })
}

fn key_used_elsewhere(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: i64,
    key: &str,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    cached_sql(
        "SELECT EXISTS (SELECT 1 FROM payment_sagas \
         WHERE user_id = $1 AND idempotency_key = $2 AND reservation_id <> $3) AS found",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(reservation_id)
    .get_result::<Found>(conn)
    .map(|row| row.found)
}

pub(super) fn set_reservation(
    conn: &mut PgConnection,
    reservation_id: i64,
    state: ReservationState,
) -> QueryResult<usize> {
    let cancelled = state == ReservationState::Cancelled;
    cached_sql(
        "UPDATE reservations SET status = $2, \
             cancelled_at = CASE WHEN $3 THEN now() ELSE cancelled_at END \
         WHERE id = $1",
    )
    .bind::<BigInt, _>(reservation_id)
    .bind::<Text, _>(state.as_str())
    .bind::<Bool, _>(cancelled)
    .execute(conn)
}

/// How a saga that compensates got there, for the saga row and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The client cancelled.
    Cancelled,
    /// The hold ran out before the payment was answered (or before its answer came).
    HoldLapsed,
    /// No answer came within `SAGA_TIMEOUT_SECONDS`.
    Timeout,
}

impl Release {
    pub fn as_str(self) -> &'static str {
        match self {
            Release::Cancelled => "cancelled",
            Release::HoldLapsed => "hold_lapsed",
            Release::Timeout => "timeout",
        }
    }

    fn reservation_state(self) -> ReservationState {
        match self {
            Release::Cancelled => ReservationState::Cancelled,
            Release::HoldLapsed | Release::Timeout => ReservationState::Expired,
        }
    }

    /// What `payment_sagas.resolved_by` records: only a saga resolved without the client.
    fn resolved_by(self) -> Option<&'static str> {
        match self {
            Release::Cancelled => None,
            Release::HoldLapsed | Release::Timeout => Some(self.as_str()),
        }
    }
}

/// Releases the seat and starts the refund: the reservation becomes cancelled or expired, the
/// saga `compensating`, and `payment.refund_requested` goes to payment-svc, in the caller's
/// transaction.
pub(super) fn compensate(
    conn: &mut PgConnection,
    saga: &Saga,
    release: Release,
) -> QueryResult<()> {
    set_reservation(conn, saga.reservation_id, release.reservation_state())?;
    cached_sql(
        "UPDATE payment_sagas SET state = $2, resolved_by = $3, updated_at = now() \
         WHERE reservation_id = $1",
    )
    .bind::<BigInt, _>(saga.reservation_id)
    .bind::<Text, _>(SagaState::Compensating.as_str())
    .bind::<Nullable<Text>, _>(release.resolved_by())
    .execute(conn)?;
    let refund = Message::RefundRequested {
        reservation_id: saga.reservation_id,
    };
    enqueue_event(conn, &refund.into_event(None))?;
    Ok(())
}

fn set_saga(conn: &mut PgConnection, reservation_id: i64, state: SagaState) -> QueryResult<usize> {
    cached_sql("UPDATE payment_sagas SET state = $2, updated_at = now() WHERE reservation_id = $1")
        .bind::<BigInt, _>(reservation_id)
        .bind::<Text, _>(state.as_str())
        .execute(conn)
}

/// Applies one reply from payment-svc, in one transaction with its inbox row: the rows of the
/// table above that start from a reply. Returns the seat it released, if it released one.
pub fn apply_reply(
    conn: &mut PgConnection,
    envelope: &Envelope,
) -> Result<Consumed<Option<i64>>, ApplyError> {
    pg_outbox::inbox::consume_once(conn, CONSUMER, envelope.event_id, |conn| {
        let reservation_id = envelope.message.reservation_id();
        let Some(saga) = find(conn, reservation_id, None, true)? else {
            log::warn!("reply for an unknown reservation reservation_id={reservation_id}");
            return Ok(None);
        };
        let mut released = None;
        match (&envelope.message, saga.saga) {
            (
                Message::PaymentCompleted {
                    payment_id,
                    balance_after,
                    ..
                },
                Some(SagaState::Paying),
            ) => {
                if saga.stored == ReservationState::PaymentPending && saga.hold_active {
                    confirm(conn, reservation_id, *payment_id, *balance_after)?;
                } else {
                    compensate(conn, &saga, Release::HoldLapsed)?;
                    released = Some(saga.seat_id);
                }
            }
            (
                Message::PaymentDeclined {
                    reason, balance, ..
                },
                Some(SagaState::Paying),
            ) => {
                set_reservation(conn, reservation_id, ReservationState::PaymentFailed)?;
                released = Some(saga.seat_id);
                cached_sql(
                    "UPDATE payment_sagas \
                     SET state = $2, declined_reason = $3, balance_after = $4, updated_at = now() \
                     WHERE reservation_id = $1",
                )
                .bind::<BigInt, _>(reservation_id)
                .bind::<Text, _>(SagaState::Declined.as_str())
                .bind::<Text, _>(reason)
                .bind::<BigInt, _>(balance)
                .execute(conn)?;
            }
            (
                Message::PaymentRefunded {
                    amount,
                    balance_after,
                    ..
                },
                Some(SagaState::Compensating),
            ) => {
                cached_sql(
                    "UPDATE payment_sagas SET state = $2, refunded_amount = $3, refund_balance = $4, \
                         updated_at = now() \
                     WHERE reservation_id = $1",
                )
                .bind::<BigInt, _>(reservation_id)
                .bind::<Text, _>(SagaState::Compensated.as_str())
                .bind::<BigInt, _>(amount)
                .bind::<Nullable<BigInt>, _>(balance_after)
                .execute(conn)?;
            }
            (Message::PaymentDeclined { .. }, Some(SagaState::Compensating)) => {
                // Voided before it was paid: nothing moved, nothing to give back.
                set_saga(conn, reservation_id, SagaState::Compensated)?;
            }
            (Message::PaymentRequested { .. } | Message::RefundRequested { .. }, _) => {
                return Err(ApplyError::NotForThisService(envelope.message.event_type()));
            }
            // A repeated reply, or a payment answered after its compensation started (its
            // refund is queued behind it): nothing to do.
            _ => {}
        }
        Ok(released)
    })
}

fn confirm(
    conn: &mut PgConnection,
    reservation_id: i64,
    payment_id: i64,
    balance_after: i64,
) -> QueryResult<()> {
    cached_sql(include_str!("confirm.sql"))
        .bind::<BigInt, _>(reservation_id)
        .bind::<BigInt, _>(payment_id)
        .bind::<BigInt, _>(balance_after)
        .bind::<diesel::sql_types::Uuid, _>(uuid::Uuid::new_v4())
        .bind::<Text, _>(RESERVATION_AGGREGATE)
        .bind::<Text, _>(RESERVATION_CONFIRMED)
        .bind::<Text, _>(ReservationState::Confirmed.as_str())
        .bind::<Text, _>(SagaState::Confirmed.as_str())
        .execute(conn)?;
    Ok(())
}
