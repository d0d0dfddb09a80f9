use crate::app_state::AppState;
use crate::blocking::with_db;
use actix_web::{get, web, HttpResponse};
use diesel::prelude::*;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health).service(metrics);
}

/// 200 when the database answers a query, 503 otherwise.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "the database answers", body = serde_json::Value),
    (status = 503, description = "the database does not answer", body = serde_json::Value),
))]
#[get("/health")]
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let probe = with_db(&state, |conn| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")).execute(conn)
    })
    .await;
    match probe {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": "up"})),
        Err(error) => {
            log::warn!("health check failed: {}", crate::error::cause_chain(&error));
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "down"}))
        }
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::metrics::scrape(state.pool.clone(), "api").await
}
