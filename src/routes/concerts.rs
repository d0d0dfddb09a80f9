use crate::auth::Admin;
use crate::concerts::{
    create_concert, list_concerts, list_seats, ConcertListing, CreatedConcert, NewSchedule,
    SeatView,
};
use crate::domain::{ConcertTitle, EntityId, Price, SeatCount};
use crate::error::ApiError;
use crate::routes::{with_db, ErrorBody};
use crate::startup::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

/// More schedules than this in one request is a mistake, not a concert.
const MAX_SCHEDULES: usize = 100;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(seats);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateConcert {
    /// 1 to 200 characters.
    title: String,
    /// 1 to 100 schedules.
    schedules: Vec<ScheduleInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    /// RFC 3339.
    starts_at: DateTime<Utc>,
    /// 1 to 1000 seats, numbered from 1.
    seat_count: i64,
    /// Points per seat, more than 0.
    price: i64,
}

impl TryFrom<ScheduleInput> for NewSchedule {
    type Error = ApiError;

    fn try_from(input: ScheduleInput) -> Result<Self, Self::Error> {
        use chrono::Datelike;
        // chrono accepts years PostgreSQL cannot store; refuse them here rather than fail later.
        if !(1970..=9999).contains(&input.starts_at.year()) {
            return Err(ApiError::Validation(
                "starts_at must fall between the years 1970 and 9999".into(),
            ));
        }
        Ok(NewSchedule {
            starts_at: input.starts_at,
            seat_count: SeatCount::try_from(input.seat_count)?,
            price: Price::try_from(input.price)?,
        })
    }
}

#[utoipa::path(tag = "catalog", request_body = CreateConcert, security(("admin_token" = [])), responses(
    (status = 201, description = "the concert with its schedules", body = CreatedConcert),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
))]
#[post("/admin/concerts")]
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

#[utoipa::path(tag = "catalog", responses(
    (status = 200, description = "every concert with its schedules and free seats", body = Vec<ConcertListing>),
))]
#[get("/concerts")]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let concerts = with_db(&state, list_concerts).await?;
    Ok(HttpResponse::Ok().json(concerts))
}

#[utoipa::path(tag = "catalog", params(("id" = i64, Path, description = "schedule id")), responses(
    (status = 200, description = "the schedule's seats and their state now", body = Vec<SeatView>),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
))]
#[get("/schedules/{id}/seats")]
async fn seats(state: web::Data<AppState>, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let schedule_id = EntityId::parse("schedule id", path.into_inner())?;
    let seats = with_db(&state, move |conn| list_seats(conn, schedule_id.get())).await?;
    let seats = seats.ok_or(ApiError::NotFound("schedule"))?;
    Ok(HttpResponse::Ok().json(seats))
}
