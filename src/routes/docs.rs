//! The OpenAPI document's frame (info, the bearer security schemes, the error shape), and its
//! serving: the paths and schemas themselves are collected from the handlers as they are
//! registered, and the finished document also tells which methods each path lacks.

use crate::error::ApiError;
use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::{web, HttpResponse, Resource};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::PathItem;
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code: validation_failed, unauthorized, not_found, method_not_allowed,
    /// seat_unavailable, insufficient_points, already_paid, already_cancelled, hold_expired,
    /// idempotency_key_reused, payload_too_large, unsupported_media_type, queue_disabled,
    /// queue_token_required, not_admitted, queue_token_expired, queue_unavailable,
    /// service_unavailable, internal_error.
    pub code: String,
    pub message: String,
    /// The caller's place in line, on `not_admitted` only.
    #[schema(nullable = false)]
    pub position: Option<u64>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "concert-outbox",
        description = "Concert seat reservations paid with points; side effects leave through a transactional outbox."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("user_token", bearer());
        components.add_security_scheme("admin_token", bearer());
    }
}

/// The document's frame, before the routes add their paths.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`, and for every path the finished document lists, a 405 with `Allow` for
/// the methods that path lacks. These come from the document, so they follow the routes as
/// they are added. Registered after the routes, a path's fallback only sees the requests none
/// of its routes took; a path nothing serves still falls through to the default 404.
pub fn serve_document(document: utoipa::openapi::OpenApi) -> impl HttpServiceFactory {
    let fallbacks: Vec<Resource> = document
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            web::resource(path.as_str()).default_service(method_not_allowed(methods_of(item)))
        })
        .collect();
    let openapi = web::resource("/openapi.json")
        .route(web::get().to(move || {
            let document = document.clone();
            async move { HttpResponse::Ok().json(document) }
        }))
        .default_service(method_not_allowed(vec![Method::GET]));
    (openapi, fallbacks)
}

fn method_not_allowed(allowed: Vec<Method>) -> actix_web::Route {
    web::to(move || {
        let allowed = allowed.clone();
        async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allowed)) }
    })
}

fn methods_of(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.is_some().then_some(method))
    .collect()
}
