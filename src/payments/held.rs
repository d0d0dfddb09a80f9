//! The payment of a reservation that is payable as it stands, as one statement.

use super::{IdempotencyKey, PaymentError, PaymentReceipt};
use crate::db::cached_sql::cached_sql;
use crate::domain::EntityId;
use crate::outbox::events::{RESERVATION_AGGREGATE, RESERVATION_CONFIRMED};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};

/// The whole payment, top to bottom, each step running only if the one before it produced a
/// row, so the statement writes everything or nothing:
/// 1. `target`: lock the caller's reservation if it is still held and within its hold (a
///    concurrent payment or cancellation of it queues on this lock, then sees it no longer held);
/// 2. `debited`: debit the price if the balance covers it (`balance >= 0` CHECK backs it up);
/// 3. `confirmed`: confirm the reservation, which marks the seat sold;
/// 4. `paid`, `ledger`: the payment row and its ledger row;
/// 5. `event`: the `reservation.confirmed` outbox event, the same JSON object as
///    [`crate::outbox::events::ReservationEvent`] (a test holds the two to each other), with
///    `now()`, the statement's transaction time, as `paid_at` in the payment row and the event.
///
/// `$1` reservation, `$2` user, `$3` idempotency key, `$4` event id, `$5` aggregate type,
/// `$6` event type, `$7` trace context.
const PAY_HELD_RESERVATION: &str = "WITH target AS ( \
         SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.amount, \
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS paid_at \
         FROM reservations r \
         JOIN seats s ON s.id = r.seat_id \
         JOIN schedules sc ON sc.id = s.schedule_id \
         WHERE r.id = $1 AND r.user_id = $2 AND r.status = 'held' AND r.held_until > now() \
         FOR UPDATE OF r), \
     debited AS ( \
         UPDATE users u SET balance = u.balance - t.amount FROM target t \
         WHERE u.id = t.user_id AND u.balance >= t.amount RETURNING u.balance), \
     confirmed AS ( \
         UPDATE reservations r SET status = 'confirmed', confirmed_at = now() \
         FROM target t WHERE r.id = t.id AND EXISTS (SELECT FROM debited) RETURNING r.id), \
     paid AS ( \
         INSERT INTO payments (reservation_id, user_id, amount, balance_after, idempotency_key) \
         SELECT c.id, t.user_id, t.amount, d.balance, $3 FROM confirmed c, debited d, target t \
         RETURNING id, reservation_id, amount, balance_after), \
     ledger AS ( \
         INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after) \
         SELECT $2, -amount, 'payment', id, balance_after FROM paid), \
     event AS ( \
         INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, trace_context) \
         SELECT $4, $5, t.id, $6, jsonb_build_object( \
                    'event_id', $4, 'event_type', $6, 'occurred_at', t.paid_at, \
                    'reservation_id', t.id, 'user_id', t.user_id, 'seat_id', t.seat_id, \
                    'seat_no', t.seat_no, 'schedule_id', t.schedule_id, \
                    'concert_id', t.concert_id, 'amount', t.amount, 'paid_at', t.paid_at), $7 \
         FROM target t, paid) \
     SELECT id AS payment_id, reservation_id, amount, balance_after AS balance FROM paid";

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
        .get_result(conn)
        .optional()?)
}
