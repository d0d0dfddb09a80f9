use crate::domain::UserName;
use crate::error::ApiError;
use crate::routes::with_db;
use crate::startup::AppState;
use crate::users::create_user;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(sign_up));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    name: String,
}

/// Creates a user; the response is the only place the token is ever shown.
async fn sign_up(
    state: web::Data<AppState>,
    body: web::Json<SignUp>,
) -> Result<HttpResponse, ApiError> {
    let name = UserName::try_from(body.into_inner().name)?;
    let user = with_db(&state, move |conn| create_user(conn, &name)).await?;
    log::info!("user created user_id={}", user.id);
    Ok(HttpResponse::Created().json(user))
}
