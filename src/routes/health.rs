use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics));
}

/// 200 when the database answers a query, 503 otherwise.
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
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::metrics::scrape(state.pool.clone(), "api").await
}
