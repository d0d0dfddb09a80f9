//! The outbox's side of `/metrics`: its backlog as gauges, and the relay's own small HTTP
//! server that serves them.

use super::admin::outbox_status;
use crate::db::DbPool;
use crate::metrics::{scrape, BacklogGauges};
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::{PgConnection, QueryResult};

/// Every destination's backlog, for [`scrape`].
pub fn backlog_gauges(conn: &mut PgConnection) -> QueryResult<Vec<BacklogGauges>> {
    let status = outbox_status(conn)?;
    Ok(status
        .destinations
        .into_iter()
        .map(|d| BacklogGauges {
            by_state: [
                ("pending", d.pending),
                ("due", d.due),
                ("in_retry", d.in_retry),
                ("in_flight", d.in_flight),
                ("dead", d.dead),
            ],
            oldest_pending_age_seconds: d.oldest_pending_age_seconds,
            destination: d.destination,
        })
        .collect())
}

/// The relay's own small HTTP server: `/metrics` and `/health`.
pub fn relay_metrics_server(
    listener: std::net::TcpListener,
    pool: DbPool,
) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        let pool = pool.clone();
        App::new()
            .route(
                "/metrics",
                web::get().to(move || scrape(pool.clone(), "relay", backlog_gauges)),
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
