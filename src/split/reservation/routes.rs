//! reservation-svc's handlers for what the split does differently from the monolith: reading
//! a reservation (with the saga's states), paying (a saga: 200 when it ends within
//! `SAGA_SYNC_WAIT_MS`, else 202 `payment_pending`), cancelling (a compensation), and the
//! points (answered through payment-svc). Everything else is the monolith's own handlers
//! (`routes::configure_with`).

use super::releases;
use super::saga::{self, Saga};
use super::states::{ReservationState, SagaState};
use super::SplitState;
use crate::app_state::AppState;
use crate::auth::AuthenticatedUser;
use crate::blocking::with_db;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::payments::IdempotencyKey;
use crate::routes::payments::{idempotency_key, PaymentBody};
use crate::routes::points::{Balance, Charge};
use crate::routes::ErrorBody;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show)
        .service(pay)
        .service(cancel)
        .service(show_balance)
        .service(charge);
}

impl From<saga::StartError> for ApiError {
    fn from(error: saga::StartError) -> Self {
        match error {
            saga::StartError::NotFound => ApiError::NotFound("reservation"),
            saga::StartError::KeyReused => ApiError::IdempotencyKeyReused,
            saga::StartError::Database(e) => e.into(),
        }
    }
}

impl From<releases::CancelError> for ApiError {
    fn from(error: releases::CancelError) -> Self {
        match error {
            releases::CancelError::NotFound => ApiError::NotFound("reservation"),
            releases::CancelError::AlreadyCancelled => ApiError::AlreadyCancelled,
            releases::CancelError::Database(e) => e.into(),
        }
    }
}

impl From<super::payment_client::Unavailable> for ApiError {
    fn from(error: super::payment_client::Unavailable) -> Self {
        ApiError::Unavailable(Box::new(error))
    }
}

/// The caller's reservation; someone else's is 404 like an unknown one. `status` is one of
/// `held`, `payment_pending`, `confirmed`, `payment_failed`, `expired`, `cancelled`.
#[utoipa::path(tag = "reservations", security(("user_token" = [])), params(("id" = inline(EntityId), Path, description = "reservation id")), responses(
    (status = 200, description = "the reservation", body = saga::ReservationView),
    (status = 400, description = "validation_failed: the id is not an integer in range", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[get("/reservations/{id}")]
async fn show(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<EntityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner().get();
    let found = with_db(&state, move |conn| {
        saga::find(conn, id, Some(user.id), false)
    })
    .await?;
    let found = found.ok_or(ApiError::NotFound("reservation"))?;
    Ok(HttpResponse::Ok().json(found.view()))
}

#[derive(Serialize, ToSchema)]
struct Pending {
    reservation_id: i64,
    /// `payment_pending`: poll `GET /reservations/{id}`.
    status: &'static str,
}

/// Pays for a held reservation: a saga. reservation-svc marks it `payment_pending` and asks
/// payment-svc, in one local transaction; the answer comes back through its inbox. 200 with the
/// receipt when the saga ends within `SAGA_SYNC_WAIT_MS`; otherwise 202, and
/// `GET /reservations/{id}` shows how it ends.
#[utoipa::path(tag = "reservations", security(("user_token" = [])), params(
    ("id" = inline(EntityId), Path, description = "reservation id"),
    ("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, nullable = false, description = "same key, same answer, one payment"),
), responses(
    (status = 200, description = "confirmed", body = PaymentBody),
    (status = 202, description = "payment_pending: the payment side has not answered yet", body = Pending),
    (status = 400, description = "validation_failed: the id is not an integer in range, or a bad Idempotency-Key", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 409, description = "insufficient_points, already_paid or already_cancelled", body = ErrorBody),
    (status = 410, description = "hold_expired", body = ErrorBody),
    (status = 422, description = "idempotency_key_reused", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/reservations/{id}/payment")]
async fn pay(
    state: web::Data<AppState>,
    split: web::Data<SplitState>,
    user: AuthenticatedUser,
    path: web::Path<EntityId>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let reservation_id = path.into_inner().get();
    let key = idempotency_key(&req)?;
    let trace_context = Some(crate::trace::trace_context(&req));
    let asked = key.as_ref().map(|k| k.as_str().to_owned());
    let waker = state.relay_waker.clone();
    let (mut saga, started_here) = with_db(&state, move |conn| {
        let started = saga::start_payment(
            conn,
            user.id,
            reservation_id,
            asked.as_deref(),
            trace_context,
        );
        waker.wake();
        started
    })
    .await?;
    let deadline = Instant::now() + split.sync_wait;
    loop {
        if let Some(answer) = answer_payment(&saga, key.as_ref(), started_here)? {
            return Ok(answer);
        }
        if Instant::now() >= deadline {
            return Ok(HttpResponse::Accepted().json(Pending {
                reservation_id,
                status: ReservationState::PaymentPending.as_str(),
            }));
        }
        split.waiters.wait(reservation_id).await;
        saga = with_db(&state, move |conn| {
            saga::find(conn, reservation_id, Some(user.id), false)
        })
        .await?
        .ok_or(ApiError::NotFound("reservation"))?;
    }
}

/// The answer the saga gives now, or `None` while it is still paying. A saga this request
/// started answers with its receipt; one started before answers with it only for the same
/// Idempotency-Key (a retry), as the monolith does.
fn answer_payment(
    saga: &Saga,
    key: Option<&IdempotencyKey>,
    started_here: bool,
) -> Result<Option<HttpResponse>, ApiError> {
    let same_key = key.is_some_and(|k| saga.idempotency_key.as_deref() == Some(k.as_str()));
    match saga.saga {
        Some(SagaState::Paying) => Ok(None),
        Some(SagaState::Confirmed) if started_here || same_key => Ok(Some(receipt(saga))),
        Some(SagaState::Confirmed) => Err(ApiError::AlreadyPaid),
        Some(SagaState::Declined) => Err(ApiError::InsufficientPoints {
            balance: saga.balance_after.unwrap_or_default(),
            price: saga.amount,
        }),
        _ if saga.status == ReservationState::Cancelled => Err(ApiError::AlreadyCancelled),
        _ => Err(ApiError::HoldExpired),
    }
}

fn receipt(saga: &Saga) -> HttpResponse {
    HttpResponse::Ok().json(PaymentBody {
        payment_id: saga.payment_id.unwrap_or_default(),
        reservation_id: saga.reservation_id,
        amount: saga.amount,
        balance: saga.balance_after.unwrap_or_default(),
        status: ReservationState::Confirmed.as_str(),
    })
}

#[derive(Serialize, ToSchema)]
struct Cancellation {
    reservation_id: i64,
    seat_id: i64,
    status: &'static str,
    /// Points given back (0 when only a hold was released, or when the payment had not been
    /// made when the reservation was cancelled).
    refunded: i64,
    /// The balance once the refund is done; when payment-svc has not answered within
    /// `SAGA_SYNC_WAIT_MS`, the balance it reports now (the refund follows).
    balance: Option<i64>,
}

/// Cancels: the seat is released at once; a paid (or paying) reservation's refund follows on
/// payment-svc, and a paid one's `reservation.cancelled` goes to the data platform.
#[utoipa::path(tag = "reservations", security(("user_token" = [])), params(("id" = inline(EntityId), Path, description = "reservation id")), responses(
    (status = 200, description = "cancelled", body = Cancellation),
    (status = 400, description = "validation_failed: the id is not an integer in range", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 409, description = "already_cancelled", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/reservations/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    split: web::Data<SplitState>,
    user: AuthenticatedUser,
    path: web::Path<EntityId>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let reservation_id = path.into_inner().get();
    let trace_context = Some(crate::trace::trace_context(&req));
    let waker = state.relay_waker.clone();
    let before = with_db(&state, move |conn| {
        let cancelled = releases::cancel(conn, user.id, reservation_id, trace_context);
        waker.wake();
        cancelled
    })
    .await?;
    state.holds.seat_released(before.seat_id);
    let paid = before.saga == Some(SagaState::Confirmed);
    let mut refunded = if paid { before.amount } else { 0 };
    let mut balance = None;
    if paid {
        let deadline = Instant::now() + split.sync_wait;
        while Instant::now() < deadline && balance.is_none() {
            split.waiters.wait(reservation_id).await;
            let now = with_db(&state, move |conn| {
                saga::find(conn, reservation_id, Some(user.id), false)
            })
            .await?;
            if let Some(done) = now.filter(|s| s.saga == Some(SagaState::Compensated)) {
                refunded = done.refunded_amount.unwrap_or(refunded);
                balance = done.refund_balance;
            }
        }
    }
    if balance.is_none() {
        balance = split.payments.balance(user.id).await.ok();
    }
    log::info!(
        "reservation cancelled request_id={} reservation_id={reservation_id} user_id={} refunded={refunded}",
        crate::trace::request_id(&req),
        user.id
    );
    Ok(HttpResponse::Ok().json(Cancellation {
        reservation_id,
        seat_id: before.seat_id,
        status: ReservationState::Cancelled.as_str(),
        refunded,
        balance,
    }))
}

/// Charges points, on payment-svc.
#[utoipa::path(tag = "points", request_body = Charge, security(("user_token" = [])), responses(
    (status = 200, description = "the new balance", body = Balance),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable: payment-svc did not answer", body = ErrorBody),
))]
#[post("/points/charge")]
async fn charge(
    split: web::Data<SplitState>,
    user: AuthenticatedUser,
    body: web::Json<Charge>,
) -> Result<HttpResponse, ApiError> {
    let amount = body.amount.get();
    let balance = split.payments.charge(user.id, amount).await?;
    log::info!(
        "points charged user_id={} amount={amount} balance={balance}",
        user.id
    );
    Ok(HttpResponse::Ok().json(Balance { balance }))
}

/// The balance, from payment-svc.
#[utoipa::path(tag = "points", security(("user_token" = [])), responses(
    (status = 200, description = "the current balance", body = Balance),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 503, description = "service_unavailable: payment-svc did not answer", body = ErrorBody),
))]
#[get("/points")]
async fn show_balance(
    split: web::Data<SplitState>,
    user: AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let balance = split.payments.balance(user.id).await?;
    Ok(HttpResponse::Ok().json(Balance { balance }))
}
