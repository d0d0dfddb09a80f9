//! The saga's releases that no reply starts: the client's cancel, and the sweeper's resolution
//! of sagas that stopped moving. Each is one local transaction that locks the reservation,
//! releases it and starts the refund (`saga::compensate`), as the table in `saga.rs` says.

use super::saga::{compensate, find, set_reservation, Release, Saga};
use super::states::{ReservationState, SagaState};
use crate::db::cached_sql::cached_sql;
use crate::outbox::events::{RESERVATION_AGGREGATE, RESERVATION_CANCELLED};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

/// Why a cancellation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such reservation")]
    NotFound,
    #[error("already cancelled")]
    AlreadyCancelled,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Cancels the user's reservation in one transaction: a hold (or a dead one) is released; a
/// reservation paying or paid is released and its refund started (and a paid one's
/// `reservation.cancelled` written). Returns the saga as it was before.
pub fn cancel(
    conn: &mut PgConnection,
    user_id: i64,
    reservation_id: i64,
    trace_context: Option<String>,
) -> Result<Saga, CancelError> {
    conn.transaction(|conn| {
        let saga = find(conn, reservation_id, Some(user_id), true)?.ok_or(CancelError::NotFound)?;
        match saga.saga {
            _ if saga.stored == ReservationState::Cancelled => {
                return Err(CancelError::AlreadyCancelled)
            }
            Some(SagaState::Paying) | Some(SagaState::Confirmed) => {
                compensate(conn, &saga, Release::Cancelled)?;
                if saga.saga == Some(SagaState::Confirmed) {
                    cached_sql(include_str!("cancelled_event.sql"))
                        .bind::<BigInt, _>(reservation_id)
                        .bind::<diesel::sql_types::Uuid, _>(uuid::Uuid::new_v4())
                        .bind::<Text, _>(RESERVATION_AGGREGATE)
                        .bind::<Text, _>(RESERVATION_CANCELLED)
                        .bind::<Nullable<Text>, _>(trace_context.as_deref())
                        .execute(conn)?;
                }
            }
            _ => {
                set_reservation(conn, reservation_id, ReservationState::Cancelled)?;
            }
        }
        Ok(saga)
    })
}

/// A saga the sweeper resolved: its reservation, the seat it released, and why.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub reservation_id: i64,
    pub seat_id: i64,
    pub release: Release,
}

/// Resolves up to 100 sagas still paying whose hold is over or which got no answer within
/// `timeout`: releases the seat and starts the refund (which voids a payment not made yet).
pub fn sweep(conn: &mut PgConnection, timeout: std::time::Duration) -> QueryResult<Vec<Resolved>> {
    #[derive(QueryableByName)]
    struct Stuck {
        #[diesel(sql_type = BigInt)]
        reservation_id: i64,
        #[diesel(sql_type = Bool)]
        hold_lapsed: bool,
    }
    conn.transaction(|conn| {
        let stuck: Vec<Stuck> = cached_sql(include_str!("stuck_sagas.sql"))
            .bind::<Text, _>(SagaState::Paying.as_str())
            .bind::<diesel::sql_types::Double, _>(timeout.as_secs_f64())
            .load(conn)?;
        let mut resolved = Vec::with_capacity(stuck.len());
        for stuck in stuck {
            // Read again under the lock: a reply committed since the query's snapshot may have
            // moved the saga on.
            let Some(saga) = find(conn, stuck.reservation_id, None, true)? else {
                continue;
            };
            if saga.saga != Some(SagaState::Paying) {
                continue;
            }
            let release = if stuck.hold_lapsed {
                Release::HoldLapsed
            } else {
                Release::Timeout
            };
            compensate(conn, &saga, release)?;
            resolved.push(Resolved {
                reservation_id: stuck.reservation_id,
                seat_id: saga.seat_id,
                release,
            });
        }
        Ok(resolved)
    })
}
