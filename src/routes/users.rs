use crate::app_state::AppState;
use crate::domain::UserName;
use crate::error::ApiError;
use crate::routes::{with_db, ErrorBody};
use crate::users::{create_user, NewUser};
use actix_web::{post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(sign_up);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignUp {
    name: UserName,
}

/// Creates a user; the response is the only place the token is ever shown.
#[utoipa::path(tag = "users", request_body = SignUp, responses(
    (status = 201, description = "created; keep the token", body = NewUser),
    (status = 400, description = "validation_failed", body = ErrorBody),
    (status = 413, description = "payload_too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/users")]
async fn sign_up(
    state: web::Data<AppState>,
    body: web::Json<SignUp>,
) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name;
    let user = with_db(&state, move |conn| create_user(conn, &name)).await?;
    state.tokens.remember(&user.token, user.id);
    log::info!("user created user_id={}", user.id);
    Ok(HttpResponse::Created().json(user))
}
