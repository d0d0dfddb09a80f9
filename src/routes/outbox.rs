use crate::app_state::AppState;
use crate::auth::Admin;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::routes::{with_db, ErrorBody};
use actix_web::{get, post, web, HttpResponse};
use pg_outbox::admin::replay_dead;
use pg_outbox::leases::{outbox_report, OutboxReport};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(status).service(replay);
}

#[derive(Serialize, ToSchema)]
struct Replayed {
    outbox_id: i64,
    /// Deliveries put back to pending (one per destination where it was dead).
    requeued: usize,
}

/// Counts by state per destination, the dead deliveries with their last error, and which
/// relay has what in flight.
#[utoipa::path(tag = "outbox", security(("admin_token" = [])), responses(
    (status = 200, description = "the outbox's state", body = OutboxReport),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[get("/admin/outbox")]
async fn status(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = with_db(&state, outbox_report).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// Re-queues the dead deliveries of outbox event `id` (as `outbox-relay replay-dead --id`).
#[utoipa::path(tag = "outbox", security(("admin_token" = [])), params(("id" = inline(EntityId), Path, description = "outbox id")), responses(
    (status = 200, description = "re-queued; the event keeps its id", body = Replayed),
    (status = 400, description = "validation_failed: the id is not an integer in range", body = ErrorBody),
    (status = 401, description = "unauthorized", body = ErrorBody),
    (status = 404, description = "not_found: no dead delivery for this event", body = ErrorBody),
    (status = 503, description = "service_unavailable", body = ErrorBody),
))]
#[post("/admin/outbox/{id}/replay")]
async fn replay(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<EntityId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let requeued = with_db(&state, move |conn| replay_dead(conn, Some(id.get()))).await?;
    if requeued == 0 {
        return Err(ApiError::NotFound("dead delivery"));
    }
    log::info!(
        "dead deliveries re-queued outbox_id={} count={requeued}",
        id.get()
    );
    Ok(HttpResponse::Ok().json(Replayed {
        outbox_id: id.get(),
        requeued,
    }))
}
