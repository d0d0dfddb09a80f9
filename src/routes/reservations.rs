use crate::app_state::AppState;
use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::reservations::{find_reservation, CancelError, Cancellation, HoldError, Reservation};
use crate::routes::{with_db, ErrorBody};
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

/// `POST /reservations`, the same in every topology.
pub fn hold_routes(cfg: &mut ServiceConfig) {
    cfg.service(hold);
}

/// The monolith's `GET /reservations/{id}` and `POST /reservations/{id}/cancel`.
pub fn show_and_cancel(cfg: &mut ServiceConfig) {
    cfg.service(show).service(cancel);
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
            HoldError::AdmissionClosed(e) => ApiError::internal(e),
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

/// Holds a seat for `HOLD_TTL_SECONDS`. With the waiting queue on, only during the caller's
/// active turn.
#[utoipa::path(tag = "reservations", request_body = Hold, security(("user_token" = [])), params(
    ("Queue-Token" = Option<String>, Header, nullable = false, description = "the caller's active queue token; required when the waiting queue is on"),
), responses(
    (status = 201, description = "held", body = Reservation),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized, or queue_token_required (no Queue-Token of the caller's)", body = ErrorBody),
    (status = 403, description = "not_admitted (still waiting; with the position) or queue_token_expired", body = ErrorBody),
    (status = 404, description = "not_found: no such seat", body = ErrorBody),
    (status = 409, description = "seat_unavailable", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable, or queue_unavailable", body = ErrorBody),
))]
#[post("/reservations")]
async fn hold(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    body: web::Json<Hold>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::queue_turn::require_active_turn(&state, &req, user.id).await?;
    let seat_id = body.seat_id;
    // Admission waits without a thread or a connection; the hold itself is blocking work.
    let admitted = state.holds.admit(seat_id).await?;
    let shared = state.clone();
    let reservation = with_db(&state, move |conn| {
        shared.holds.hold(conn, admitted, user.id)
    })
    .await?;
    log::info!(
        "seat held reservation_id={} seat_id={} user_id={}",
        reservation.id,
        reservation.seat_id,
        user.id
    );
    Ok(HttpResponse::Created().json(reservation))
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
        let relays = &shared.relay_waker;
        shared
            .holds
            .cancel(conn, relays, user.id, id, Some(trace_context))
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
