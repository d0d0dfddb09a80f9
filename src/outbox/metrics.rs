//! The relay's own small HTTP server: `/metrics` and `/health`.

use crate::db::DbPool;
use crate::metrics::scrape;
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

/// Serves the relay's metrics (its deliveries, the backlog, its pool) on `listener`.
pub fn relay_metrics_server(
    listener: std::net::TcpListener,
    pool: DbPool,
) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        let pool = pool.clone();
        App::new()
            .route(
                "/metrics",
                web::get().to(move || scrape(pool.clone(), "relay", None)),
            )
            .route(
                "/health",
                web::get()
                    .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
