use crate::auth::AuthenticatedUser;
use crate::domain::ChargeAmount;
use crate::error::ApiError;
use crate::points::{charge_points, current_balance};
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/points", web::get().to(balance))
        .route("/points/charge", web::post().to(charge));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Charge {
    amount: i64,
}

async fn charge(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    body: web::Json<Charge>,
) -> Result<HttpResponse, ApiError> {
    let amount = ChargeAmount::try_from(body.amount)?;
    let balance = with_db(&state, move |conn| charge_points(conn, user.id, amount)).await?;
    log::info!(
        "points charged user_id={} amount={} balance={balance}",
        user.id,
        amount.get()
    );
    Ok(HttpResponse::Ok().json(json!({ "balance": balance })))
}

async fn balance(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let balance = with_db(&state, move |conn| current_balance(conn, user.id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "balance": balance })))
}
