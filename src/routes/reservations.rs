use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::reservations::{
    cancel_reservation, find_reservation, hold_seat, CancelError, HoldError,
};
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reservations", web::post().to(hold))
        .route("/reservations/{id}", web::get().to(show))
        .route("/reservations/{id}/cancel", web::post().to(cancel));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hold {
    seat_id: i64,
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

async fn hold(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    body: web::Json<Hold>,
) -> Result<HttpResponse, ApiError> {
    let seat_id = EntityId::parse("seat_id", body.seat_id)?;
    let ttl = state.hold_ttl;
    let reservation = with_db(&state, move |conn| hold_seat(conn, user.id, seat_id, ttl)).await?;
    log::info!(
        "seat held reservation_id={} seat_id={} user_id={}",
        reservation.id,
        reservation.seat_id,
        user.id
    );
    Ok(HttpResponse::Created().json(reservation))
}

async fn show(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = EntityId::parse("reservation id", path.into_inner())?;
    let reservation = with_db(&state, move |conn| find_reservation(conn, user.id, id)).await?;
    let reservation = reservation.ok_or(ApiError::NotFound("reservation"))?;
    Ok(HttpResponse::Ok().json(reservation))
}

async fn cancel(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<i64>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = EntityId::parse("reservation id", path.into_inner())?;
    let trace_context = crate::trace::trace_context(&req);
    let cancellation = with_db(&state, move |conn| {
        cancel_reservation(conn, user.id, id, Some(trace_context))
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
