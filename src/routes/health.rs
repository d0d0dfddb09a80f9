use crate::app_state::AppState;
use crate::blocking::with_db;
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health).service(metrics);
}

/// 200 when the database answers a query (and, with the waiting queue on, Redis runs the
/// queue's read-only script); 503 otherwise, naming the part that is down: `{"status", "database": "up"|"down",
/// "queue": "up"|"down"}`, `queue` only when the queue is on.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "every part answers", body = serde_json::Value),
    (status = 503, description = "the database or the queue's Redis does not answer", body = serde_json::Value),
))]
#[get("/health")]
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let probe = with_db(&state, |conn| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).execute(conn)
    })
    .await;
    let database_up = match probe {
        Ok(_) => true,
        Err(error) => {
            log::warn!(
                "health check: database down error=\"{}\"",
                crate::error::cause_chain(&error)
            );
            false
        }
    };
    let mut body = serde_json::json!({"database": if database_up { "up" } else { "down" }});
    let mut up = database_up;
    if let Some(queue) = state.queue.as_deref() {
        let queue_up = match queue.check().await {
            Ok(()) => true,
            Err(error) => {
                log::warn!(
                    "health check: queue down error=\"{}\"",
                    crate::error::cause_chain(&error)
                );
                false
            }
        };
        body["queue"] = (if queue_up { "up" } else { "down" }).into();
        up &= queue_up;
    }
    body["status"] = (if up { "ok" } else { "unavailable" }).into();
    match up {
        true => HttpResponse::Ok().json(body),
        false => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::metrics::scrape(state.pool.clone(), "api", state.queue.as_deref()).await
}
