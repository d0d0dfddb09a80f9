use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::reservations::{
    cancel_reservation, find_reservation, hold_seat, CancelError, Cancellation, HoldError,
    Reservation,
};
use crate::routes::{with_db, ErrorBody};
use crate::startup::AppState;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(hold).service(show).service(cancel);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Hold {
    seat_id: EntityId,
}

impl From<HoldError> for ApiError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::UnknownSeat => ApiError::NotFound("seat"),
            HoldError::SeatUnavailable => ApiError::SeatUnavailable,
            HoldError::Database(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> Self {
        match error {
            CancelError::NotFound => ApiError::NotFound("reservation"),
            CancelError::AlreadyCancelled => ApiError::AlreadyCancelled,
            CancelError::Payload(e) => ApiError::internal(e),
            CancelError::Database(e) => e.into(),
        }
    }
}

/// Holds a seat for `HOLD_TTL_SECONDS`.
#[utoipa::path(tag = "reservations", request_body = Hold, security(("user_token" = [])), responses(
    (status = 201, description = "held", body = Reservation),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found: no such seat", body = ErrorBody),
    (status = 409, description = "seat_unavailable", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/reservations")]
async fn hold(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    body: web::Json<Hold>,
) -> Result<HttpResponse, ApiError> {
    let seat_id = body.seat_id;
    let reservation = hold_through_admission(&state, user.id, seat_id).await?;
    log::info!(
        "seat held reservation_id={} seat_id={} user_id={}",
        reservation.id,
        reservation.seat_id,
        user.id
    );
    Ok(HttpResponse::Created().json(reservation))
}

/// A hold the way a rush needs it. A seat seen taken within the last second is refused without
/// the database. Otherwise the hold waits for one of `HOLD_CONCURRENCY` permits, holding no
/// thread and no connection while it waits. The permit and what the database answered are
/// dealt with inside the blocking work, which runs to its end even if the client has gone, so
/// a dropped request never frees its permit while its statement still holds a connection.
async fn hold_through_admission(
    state: &web::Data<AppState>,
    user_id: i64,
    seat_id: EntityId,
) -> Result<Reservation, ApiError> {
    // Asked again once a permit is granted: the seat may have been taken while we queued.
    let taken = || state.taken_seats.is_taken(seat_id.get());
    if taken() {
        return Err(ApiError::SeatUnavailable);
    }
    let permit = state
        .hold_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    if taken() {
        return Err(ApiError::SeatUnavailable);
    }
    let (ttl, shared) = (state.hold_ttl, state.clone());
    with_db(state, move |conn| {
        let held = hold_seat(conn, user_id, seat_id, ttl);
        drop(permit);
        match &held {
            Ok(reservation) => shared
                .taken_seats
                .remember(reservation.seat_id, Some(reservation.held_until)),
            Err(HoldError::SeatUnavailable) => shared.taken_seats.remember(seat_id.get(), None),
            Err(_) => {}
        }
        held
    })
    .await
}

/// The caller's reservation; someone else's is 404 like an unknown one.
#[utoipa::path(tag = "reservations", security(("user_token" = [])), params(("id" = inline(EntityId), Path, description = "reservation id")), responses(
    (status = 200, description = "the reservation", body = Reservation),
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
    let id = path.into_inner();
    let reservation = with_db(&state, move |conn| find_reservation(conn, user.id, id)).await?;
    let reservation = reservation.ok_or(ApiError::NotFound("reservation"))?;
    Ok(HttpResponse::Ok().json(reservation))
}

/// Cancels: a paid reservation is refunded in one transaction (and a `reservation.cancelled`
/// event written); a hold is released.
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
    user: AuthenticatedUser,
    path: web::Path<EntityId>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let trace_context = crate::trace::trace_context(&req);
    let shared = state.clone();
    let cancellation = with_db(&state, move |conn| {
        let cancellation = cancel_reservation(conn, user.id, id, Some(trace_context))?;
        // In the blocking work, which finishes even if the client has gone: a committed
        // cancellation is always followed by these.
        if cancellation.wrote_event() {
            shared.relay_waker.wake();
        }
        shared.taken_seats.forget(cancellation.seat_id);
        Ok::<_, CancelError>(cancellation)
    })
    .await?;
    log::info!(
        "reservation cancelled request_id={} reservation_id={} user_id={} refunded={}",
        crate::trace::request_id(&req),
        cancellation.reservation_id,
        user.id,
        cancellation.refunded
    );
    Ok(HttpResponse::Ok().json(cancellation))
}
