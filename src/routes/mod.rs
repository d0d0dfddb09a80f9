//! HTTP handlers, one file per resource. Handlers only parse input into domain types, call a
//! use case on a blocking thread, and map the result.

mod concerts;
mod docs;
mod health;
mod outbox;
pub(crate) mod payments;
pub(crate) mod points;
mod queue;
pub(crate) mod queue_turn;
mod reservations;
mod users;

use crate::error::ApiError;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::{web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

// For the handlers below; other modules take it from `blocking`.
use crate::blocking::with_db;
pub use docs::{api_doc, serve_document, ErrorBody};

/// Registers every route of the monolith. Routes go through `service(...)` with
/// `#[utoipa::path]` handlers, so the OpenAPI document at `/openapi.json` is collected from the
/// very registrations served.
pub fn configure(cfg: &mut ServiceConfig) {
    configure_with(cfg, |cfg| {
        cfg.configure(reservations::show_and_cancel)
            .configure(payments::routes)
            .configure(points::routes);
    });
}

/// Registers the routes every topology shares (health, users, the catalog, holds, the outbox's
/// admin routes) around `topology`'s: reading, paying for and cancelling a reservation, and the
/// points, whose use cases differ between the monolith and the split (`split::reservation`).
pub fn configure_with(cfg: &mut ServiceConfig, topology: impl FnOnce(&mut ServiceConfig)) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .content_type_required(false)
            .error_handler(|error, _| json_error(error).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|error, _| path_error(error).into()))
    .configure(health::routes)
    .configure(users::routes)
    .configure(concerts::routes)
    .configure(queue::routes)
    .configure(reservations::hold_routes)
    .configure(topology)
    .configure(outbox::routes)
    .default_service(web::to(unknown_route));
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => ApiError::Validation(format!("invalid JSON body: {e}")),
        other => ApiError::Validation(format!("unreadable request body: {other}")),
    }
}

fn path_error(error: PathError) -> ApiError {
    let PathError::Deserialize(e) = error else {
        return ApiError::Validation("invalid path".into());
    };
    ApiError::Validation(format!("invalid id in path: {e}"))
}

async fn unknown_route() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound("route"))
}
