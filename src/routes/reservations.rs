use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::reservations::{find_reservation, hold_seat, HoldError};
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reservations", web::post().to(hold))
        .route("/reservations/{id}", web::get().to(show));
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
