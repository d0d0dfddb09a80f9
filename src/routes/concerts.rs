use crate::app_state::AppState;
use crate::auth::Admin;
use crate::concerts::{
    create_concert, list_concerts, list_seats, ConcertListing, CreatedConcert, NewSchedule,
    SeatView,
};
use crate::domain::{ConcertTitle, EntityId, Price, ScheduleStart, SeatCount};
use crate::error::ApiError;
use crate::routes::{with_db, ErrorBody};
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::openapi::{ArrayBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

/// More schedules than this in one request is a mistake, not a concert.
const MAX_SCHEDULES: usize = 100;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create).service(list).service(seats);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateConcert {
    title: ConcertTitle,
    #[schema(schema_with = schedules_schema)]
    schedules: Vec<ScheduleInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    #[schema(inline)]
    starts_at: ScheduleStart,
    #[schema(inline)]
    seat_count: SeatCount,
    #[schema(inline)]
    price: Price,
}

/// The schedules' bounds, from the same constant the handler checks. Inlined, as is
/// everything in a schedule, because a schema given this way brings no references along.
fn schedules_schema() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ScheduleInput::schema())
        .min_items(Some(1))
        .max_items(Some(MAX_SCHEDULES))
        .into()
}

impl From<ScheduleInput> for NewSchedule {
    fn from(input: ScheduleInput) -> Self {
        NewSchedule {
            starts_at: input.starts_at.get(),
            seat_count: input.seat_count,
            price: input.price,
        }
    }
}

#[utoipa::path(tag = "catalog", request_body = CreateConcert, security(("admin_token" = [])), responses(
    (status = 201, description = "the concert with its schedules", body = CreatedConcert),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/admin/concerts")]
async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateConcert>,
) -> Result<HttpResponse, ApiError> {
    let CreateConcert { title, schedules } = body.into_inner();
    if schedules.is_empty() || schedules.len() > MAX_SCHEDULES {
        return Err(ApiError::Validation(format!(
            "schedules must hold 1 to {MAX_SCHEDULES} entries"
        )));
    }
    let schedules: Vec<NewSchedule> = schedules.into_iter().map(NewSchedule::from).collect();
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
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[get("/concerts")]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let concerts = with_db(&state, list_concerts).await?;
    Ok(HttpResponse::Ok().json(concerts))
}

#[utoipa::path(tag = "catalog", params(("id" = inline(EntityId), Path, description = "schedule id")), responses(
    (status = 200, description = "the schedule's seats and their state now", body = Vec<SeatView>),
    (status = 400, description = "validation_failed: the id is not an integer in range", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[get("/schedules/{id}/seats")]
async fn seats(
    state: web::Data<AppState>,
    path: web::Path<EntityId>,
) -> Result<HttpResponse, ApiError> {
    let schedule_id = path.into_inner();
    let seats = with_db(&state, move |conn| list_seats(conn, schedule_id.get())).await?;
    let seats = seats.ok_or(ApiError::NotFound("schedule"))?;
    Ok(HttpResponse::Ok().json(seats))
}
