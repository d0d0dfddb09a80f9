use crate::auth::Admin;
use crate::concerts::{create_concert, list_concerts, list_seats, NewSchedule};
use crate::domain::{ConcertTitle, EntityId, Price, SeatCount};
use crate::error::ApiError;
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// More schedules than this in one request is a mistake, not a concert.
const MAX_SCHEDULES: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/concerts", web::post().to(create))
        .route("/concerts", web::get().to(list))
        .route("/schedules/{id}/seats", web::get().to(seats));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConcert {
    title: String,
    schedules: Vec<ScheduleInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    starts_at: DateTime<Utc>,
    seat_count: i64,
    price: i64,
}

impl TryFrom<ScheduleInput> for NewSchedule {
    type Error = ApiError;

    fn try_from(input: ScheduleInput) -> Result<Self, Self::Error> {
        Ok(NewSchedule {
            starts_at: input.starts_at,
            seat_count: SeatCount::try_from(input.seat_count)?,
            price: Price::try_from(input.price)?,
        })
    }
}

async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateConcert>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let title = ConcertTitle::try_from(body.title)?;
    if body.schedules.is_empty() || body.schedules.len() > MAX_SCHEDULES {
        return Err(ApiError::Validation(format!(
            "schedules must hold 1 to {MAX_SCHEDULES} entries"
        )));
    }
    let schedules = body
        .schedules
        .into_iter()
        .map(NewSchedule::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let concert = with_db(&state, move |conn| create_concert(conn, &title, &schedules)).await?;
    log::info!(
        "concert created concert_id={} schedules={}",
        concert.id,
        concert.schedules.len()
    );
    Ok(HttpResponse::Created().json(concert))
}

async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let concerts = with_db(&state, list_concerts).await?;
    Ok(HttpResponse::Ok().json(concerts))
}

async fn seats(state: web::Data<AppState>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let schedule_id = EntityId::parse("schedule id", path.into_inner())?;
    let seats = with_db(&state, move |conn| list_seats(conn, schedule_id.get())).await?;
    let seats = seats.ok_or(ApiError::NotFound("schedule"))?;
    Ok(HttpResponse::Ok().json(seats))
}
