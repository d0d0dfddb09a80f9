//! The OpenAPI document's frame: info, the bearer security schemes and the error shape. The
//! paths and schemas themselves are collected from the handlers as they are registered.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code: validation_failed, unauthorized, not_found, seat_unavailable,
    /// insufficient_points, already_paid, already_cancelled, hold_expired,
    /// idempotency_key_reused, payload_too_large, unsupported_media_type, service_unavailable,
    /// internal_error.
    pub code: String,
    pub message: String,
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
