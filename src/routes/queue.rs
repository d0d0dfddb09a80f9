use crate::app_state::AppState;
use crate::auth::AuthenticatedUser;
use crate::error::ApiError;
use crate::queue::{Place, Queue, TokenStatus};
use crate::routes::ErrorBody;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(join).service(show).service(leave);
}

/// A queue token as its owner sees it.
#[derive(Serialize, ToSchema)]
struct QueueTokenBody {
    token: Uuid,
    status: TokenStatus,
    /// Place in line counted from its front, active users included (1 is the first); 0 once
    /// expired.
    position: u64,
    /// Users in line before this one: `position - 1`, 0 once expired.
    ahead: u64,
    /// When an active turn ends unless a payment ends it first; null unless active.
    active_until: Option<DateTime<Utc>>,
}

impl QueueTokenBody {
    fn new(token: Uuid, place: Place) -> Self {
        QueueTokenBody {
            token,
            status: place.status,
            position: place.position,
            ahead: place.position.saturating_sub(1),
            active_until: place.active_until,
        }
    }
}

fn enabled_queue(state: &AppState) -> Result<&Queue, ApiError> {
    state.queue.as_deref().ok_or(ApiError::QueueDisabled)
}

/// The token named in the path: one that is not a token at all is nobody's, so 404.
fn token_in_path(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::NotFound("queue token"))
}

/// Joins the waiting queue, or answers the place the caller already has. Active at once while
/// fewer than `QUEUE_ACTIVE_LIMIT` users are active and nobody waits.
#[utoipa::path(tag = "queue", security(("user_token" = [])), responses(
    (status = 201, description = "the caller's token and place (the same token when asked again)", body = QueueTokenBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "queue_disabled", body = ErrorBody),
    (status = 503, description = "queue_unavailable", body = ErrorBody),
))]
#[post("/queue/tokens")]
async fn join(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
) -> Result<HttpResponse, ApiError> {
    let queue = enabled_queue(&state)?;
    let (token, place) = queue.join(user.id).await?;
    log::info!(
        "queue joined user_id={} status={:?} position={}",
        user.id,
        place.status,
        place.position
    );
    Ok(HttpResponse::Created().json(QueueTokenBody::new(token, place)))
}

/// The caller's token: waiting (with its exact place), active, or expired. Polling keeps a
/// waiting place for another `QUEUE_TOKEN_TTL_SECONDS`; someone else's token is 404.
#[utoipa::path(tag = "queue", security(("user_token" = [])), params(("token" = Uuid, Path, description = "the queue token")), responses(
    (status = 200, description = "the token's state", body = QueueTokenBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found (no such token of yours) or queue_disabled", body = ErrorBody),
    (status = 503, description = "queue_unavailable", body = ErrorBody),
))]
#[get("/queue/tokens/{token}")]
async fn show(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let queue = enabled_queue(&state)?;
    let token = token_in_path(&path)?;
    let place = queue
        .status(user.id, token, true)
        .await?
        .ok_or(ApiError::NotFound("queue token"))?;
    Ok(HttpResponse::Ok().json(QueueTokenBody::new(token, place)))
}

/// Leaves the queue: the turn or place ends at once, and the next in line is admitted. The token
/// stays the caller's, `expired`, as after a payment.
#[utoipa::path(tag = "queue", security(("user_token" = [])), params(("token" = Uuid, Path, description = "the queue token")), responses(
    (status = 200, description = "left: the token, now expired", body = QueueTokenBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found (no live token of yours) or queue_disabled", body = ErrorBody),
    (status = 503, description = "queue_unavailable", body = ErrorBody),
))]
#[post("/queue/tokens/{token}/leave")]
async fn leave(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let queue = enabled_queue(&state)?;
    let token = token_in_path(&path)?;
    let left = queue.finish(user.id, token, "left").await?;
    if !left {
        return Err(ApiError::NotFound("queue token"));
    }
    log::info!("queue left user_id={}", user.id);
    let ended = Place {
        status: TokenStatus::Expired,
        position: 0,
        active_until: None,
    };
    Ok(HttpResponse::Ok().json(QueueTokenBody::new(token, ended)))
}
