use crate::app_state::AppState;
use crate::auth::AuthenticatedUser;
use crate::domain::ChargeAmount;
use crate::error::ApiError;
use crate::points::{charge_points, current_balance};
use crate::routes::{with_db, ErrorBody};
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show_balance).service(charge);
}

/// `POST /points/charge`'s body, in either topology.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Charge {
    pub amount: ChargeAmount,
}

/// A balance, as `/points` and `/points/charge` answer it in either topology.
#[derive(Serialize, ToSchema)]
pub(crate) struct Balance {
    pub balance: i64,
}

#[utoipa::path(tag = "points", request_body = Charge, security(("user_token" = [])), responses(
    (status = 200, description = "the new balance", body = Balance),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/points/charge")]
async fn charge(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    body: web::Json<Charge>,
) -> Result<HttpResponse, ApiError> {
    let amount = body.amount;
    let balance = with_db(&state, move |conn| charge_points(conn, user.id, amount)).await?;
    log::info!(
        "points charged user_id={} amount={} balance={balance}",
        user.id,
        amount.get()
    );
    Ok(HttpResponse::Ok().json(Balance { balance }))
}

#[utoipa::path(tag = "points", security(("user_token" = [])), responses(
    (status = 200, description = "the current balance", body = Balance),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[get("/points")]
async fn show_balance(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let balance = with_db(&state, move |conn| current_balance(conn, user.id)).await?;
    Ok(HttpResponse::Ok().json(Balance { balance }))
}
