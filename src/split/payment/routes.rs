//! payment-svc's HTTP API, for reservation-svc on the private network (it has no public one):
//! its inbox, the balances reservation-svc reads and charges for its users (each of these only
//! with the `INTERNAL_TOKEN`), health and metrics.

use super::ledger;
use crate::auth::{Internal, InternalToken};
use crate::split::bus::{self, Inbox};
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use pg_outbox::db::DbPool;
use serde::Deserialize;
use serde_json::json;
use std::net::TcpListener;

pub fn server(
    listener: TcpListener,
    pool: DbPool,
    inbox: web::Data<Inbox>,
    internal_token: web::Data<InternalToken>,
) -> std::io::Result<Server> {
    let pool = web::Data::new(pool);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .app_data(inbox.clone())
            .app_data(internal_token.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/internal/inbox", web::post().to(bus::receive))
            .route("/internal/balances/{user_id}", web::get().to(show_balance))
            .route(
                "/internal/balances/{user_id}/charges",
                web::post().to(charge),
            )
            .route("/health", web::get().to(health))
            .route(
                "/metrics",
                web::get().to(|pool: web::Data<DbPool>| {
                    crate::metrics::scrape(pool.get_ref().clone(), "payment", None)
                }),
            )
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run())
}

async fn show_balance(
    _: Internal,
    pool: web::Data<DbPool>,
    user_id: web::Path<i64>,
) -> HttpResponse {
    let user_id = user_id.into_inner();
    answer(with_conn(&pool, move |conn| ledger::balance(conn, user_id)).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Charge {
    amount: i64,
}

async fn charge(
    _: Internal,
    pool: web::Data<DbPool>,
    user_id: web::Path<i64>,
    body: web::Json<Charge>,
) -> HttpResponse {
    let (user_id, amount) = (user_id.into_inner(), body.amount);
    if amount <= 0 {
        return HttpResponse::BadRequest().json(json!({"error": {"code": "validation_failed",
            "message": "amount must be positive"}}));
    }
    answer(with_conn(&pool, move |conn| ledger::charge(conn, user_id, amount)).await)
}

async fn health(pool: web::Data<DbPool>) -> HttpResponse {
    match with_conn(&pool, |conn| ledger::balance(conn, 0)).await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"})),
    }
}

fn answer(balance: Result<i64, String>) -> HttpResponse {
    match balance {
        Ok(balance) => HttpResponse::Ok().json(json!({ "balance": balance })),
        Err(error) => {
            log::warn!("payment-svc request failed error=\"{error}\"");
            HttpResponse::ServiceUnavailable().json(json!({"error": {"code": "service_unavailable",
                "message": "the payment database did not answer"}}))
        }
    }
}

async fn with_conn<T: Send + 'static>(
    pool: &DbPool,
    work: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, String> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        work(&mut conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
