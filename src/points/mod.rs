//! Point balances. Every change writes a ledger row in the same statement, so
//! `users.balance` always equals the sum of the user's ledger deltas.

use crate::db::cached_sql::cached_sql;
use crate::domain::ChargeAmount;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = BigInt)]
    balance: i64,
}

/// Why points are credited: bought, or given back for a cancelled payment.
#[derive(Debug, Clone, Copy)]
pub enum Credit {
    Charge,
    Refund { payment_id: i64 },
}

/// Adds `amount` to the user's balance and records it; returns the new balance.
pub fn charge_points(
    conn: &mut PgConnection,
    user_id: i64,
    amount: ChargeAmount,
) -> QueryResult<i64> {
    credit_points(conn, user_id, amount.get(), Credit::Charge)
}

/// Adds `amount` (> 0) to the user's balance and writes its ledger row, in one statement;
/// returns the new balance. An unknown user is `NotFound`, with nothing written.
pub fn credit_points(
    conn: &mut PgConnection,
    user_id: i64,
    amount: i64,
    credit: Credit,
) -> QueryResult<i64> {
    let (reason, payment_id) = match credit {
        Credit::Charge => ("charge", None),
        Credit::Refund { payment_id } => ("refund", Some(payment_id)),
    };
    cached_sql(
        "WITH credited AS ( \
             UPDATE users SET balance = balance + $2 WHERE id = $1 RETURNING id, balance) \
         INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after) \
         SELECT id, $2, $3, $4, balance FROM credited \
         RETURNING balance_after AS balance",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<BigInt, _>(amount)
    .bind::<Text, _>(reason)
    .bind::<Nullable<BigInt>, _>(payment_id)
    .get_result::<BalanceRow>(conn)
    .map(|row| row.balance)
}

pub fn current_balance(conn: &mut PgConnection, user_id: i64) -> QueryResult<i64> {
    use crate::db::schema::users;
    users::table
        .find(user_id)
        .select(users::balance)
        .get_result(conn)
}
