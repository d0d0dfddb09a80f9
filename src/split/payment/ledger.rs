//! payment-svc's use cases: charge, read a balance, pay for a reservation, refund it. Each
//! runs inside the caller's transaction (the inbox's, for pay and refund) and changes a balance
//! only together with its ledger row.

use crate::db::cached_sql::cached_sql;
use crate::split::messages::Message;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

#[derive(QueryableByName)]
struct Balance {
    #[diesel(sql_type = BigInt)]
    balance: i64,
}

/// Adds `amount` to the user's balance (opening it at 0 if the user has none yet) with its
/// ledger row, in one statement; returns the new balance.
pub fn charge(conn: &mut PgConnection, user_id: i64, amount: i64) -> QueryResult<i64> {
    cached_sql(
        "WITH credited AS ( \
             INSERT INTO balances (user_id, balance) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE \
                 SET balance = balances.balance + EXCLUDED.balance, updated_at = now() \
             RETURNING user_id, balance) \
         INSERT INTO point_ledger (user_id, delta, reason, balance_after) \
         SELECT user_id, $2, 'charge', balance FROM credited \
         RETURNING balance_after AS balance",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<BigInt, _>(amount)
    .get_result::<Balance>(conn)
    .map(|row| row.balance)
}

/// The user's balance; 0 for a user who never charged.
pub fn balance(conn: &mut PgConnection, user_id: i64) -> QueryResult<i64> {
    cached_sql("SELECT coalesce((SELECT balance FROM balances WHERE user_id = $1), 0) AS balance")
        .bind::<BigInt, _>(user_id)
        .get_result::<Balance>(conn)
        .map(|row| row.balance)
}

#[derive(QueryableByName)]
struct Payment {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = BigInt)]
    balance_after: i64,
    #[diesel(sql_type = Text)]
    status: String,
}

/// The reservation's payment, locked for the rest of the transaction.
fn payment_of(conn: &mut PgConnection, reservation_id: i64) -> QueryResult<Option<Payment>> {
    cached_sql(
        "SELECT id, amount, balance_after, status FROM payments \
         WHERE reservation_id = $1 FOR UPDATE",
    )
    .bind::<BigInt, _>(reservation_id)
    .get_result(conn)
    .optional()
}

/// Pays for the reservation once and returns the reply: completed (again, with the first
/// payment, for a repeated request), or declined (too few points, or refunded before it was
/// paid). The debit, the payment and its ledger row are one statement.
pub fn pay(
    conn: &mut PgConnection,
    reservation_id: i64,
    user_id: i64,
    amount: i64,
    payment_key: &str,
) -> QueryResult<Message> {
    let current = balance(conn, user_id)?;
    let declined = |reason: &str| Message::PaymentDeclined {
        reservation_id,
        reason: reason.to_owned(),
        balance: current,
    };
    if let Some(paid) = payment_of(conn, reservation_id)? {
        return Ok(match paid.status.as_str() {
            "completed" => Message::PaymentCompleted {
                reservation_id,
                payment_id: paid.id,
                amount: paid.amount,
                balance_after: paid.balance_after,
            },
            _ => declined("voided"),
        });
    }
    if is_voided(conn, reservation_id)? {
        return Ok(declined("voided"));
    }
    let paid: Option<Payment> = cached_sql(include_str!("pay.sql"))
        .bind::<BigInt, _>(user_id)
        .bind::<BigInt, _>(amount)
        .bind::<BigInt, _>(reservation_id)
        .bind::<Text, _>(payment_key)
        .get_result(conn)
        .optional()?;
    Ok(match paid {
        Some(paid) => Message::PaymentCompleted {
            reservation_id,
            payment_id: paid.id,
            amount: paid.amount,
            balance_after: paid.balance_after,
        },
        None => declined("insufficient_points"),
    })
}

fn is_voided(conn: &mut PgConnection, reservation_id: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    cached_sql(
        "SELECT EXISTS (SELECT 1 FROM voided_reservations WHERE reservation_id = $1) AS found",
    )
    .bind::<BigInt, _>(reservation_id)
    .get_result::<Found>(conn)
    .map(|row| row.found)
}

/// Gives back what the reservation's payment took, once, and returns the reply. With no
/// payment yet, records the reservation as voided (a payment requested for it later is
/// declined) and replies that nothing was refunded.
pub fn refund(conn: &mut PgConnection, reservation_id: i64) -> QueryResult<Message> {
    let refunded = |amount, balance_after| Message::PaymentRefunded {
        reservation_id,
        amount,
        balance_after,
    };
    let Some(paid) = payment_of(conn, reservation_id)? else {
        cached_sql(
            "INSERT INTO voided_reservations (reservation_id) VALUES ($1) \
             ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind::<BigInt, _>(reservation_id)
        .execute(conn)?;
        return Ok(refunded(0, None));
    };
    if paid.status != "completed" {
        return Ok(refunded(paid.amount, None));
    }
    let balance = cached_sql(include_str!("refund.sql"))
        .bind::<BigInt, _>(paid.id)
        .get_result::<Balance>(conn)?;
    Ok(refunded(paid.amount, Some(balance.balance)))
}

/// The user's balance and the sum of their ledger, for checks that the books hold.
pub fn ledger_sum(conn: &mut PgConnection, user_id: i64) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Sum {
        #[diesel(sql_type = Nullable<BigInt>)]
        total: Option<i64>,
    }
    cached_sql("SELECT sum(delta)::bigint AS total FROM point_ledger WHERE user_id = $1")
        .bind::<BigInt, _>(user_id)
        .get_result::<Sum>(conn)
        .map(|row| row.total)
}
