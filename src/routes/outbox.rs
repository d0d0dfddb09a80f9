use crate::auth::Admin;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::outbox::admin::{outbox_status, replay_dead};
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/outbox", web::get().to(status))
        .route("/admin/outbox/{id}/replay", web::post().to(replay));
}

/// Counts by state per destination, and the dead deliveries with their last error.
async fn status(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = with_db(&state, outbox_status).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// Re-queues the dead deliveries of outbox event `id` (as `outbox-relay replay-dead --id`).
async fn replay(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = EntityId::parse("outbox id", path.into_inner())?;
    let requeued = with_db(&state, move |conn| replay_dead(conn, Some(id.get()))).await?;
    if requeued == 0 {
        return Err(ApiError::NotFound("dead delivery"));
    }
    log::info!(
        "dead deliveries re-queued outbox_id={} count={requeued}",
        id.get()
    );
    Ok(HttpResponse::Ok().json(json!({"outbox_id": id.get(), "requeued": requeued})))
}
