//! The API's error type and its single mapping to a status code and a JSON body
//! `{"error": {"code", "message"}}`. Unexpected errors are logged once, here, with their whole
//! cause chain; the client only sees a stable code.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::error::Error as StdError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this path answers only {}", method_list(.0))]
    MethodNotAllowed(Vec<Method>),
    #[error("the seat is already held or sold")]
    SeatUnavailable,
    #[error("not enough points: balance {balance}, price {price}")]
    InsufficientPoints { balance: i64, price: i64 },
    #[error("the reservation is already paid")]
    AlreadyPaid,
    #[error("the reservation is already cancelled")]
    AlreadyCancelled,
    #[error("the hold has expired; hold the seat again")]
    HoldExpired,
    #[error("this Idempotency-Key was already used for another request")]
    IdempotencyKeyReused,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("the waiting queue is not enabled on this server (QUEUE_ENABLED)")]
    QueueDisabled,
    #[error("{0}")]
    QueueTokenRequired(&'static str),
    #[error("not admitted yet: place {position} in line; poll your token until it is active")]
    NotAdmitted { position: u64 },
    #[error("this queue token has expired; join the queue again")]
    QueueTokenExpired,
    #[error("the waiting queue is temporarily unavailable")]
    QueueUnavailable(#[source] Box<dyn StdError + Send + Sync>),
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl ApiError {
    pub fn internal(error: impl StdError + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(error))
    }

    /// The stable, machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::SeatUnavailable => "seat_unavailable",
            ApiError::InsufficientPoints { .. } => "insufficient_points",
            ApiError::AlreadyPaid => "already_paid",
            ApiError::AlreadyCancelled => "already_cancelled",
            ApiError::HoldExpired => "hold_expired",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::QueueDisabled => "queue_disabled",
            ApiError::QueueTokenRequired(_) => "queue_token_required",
            ApiError::NotAdmitted { .. } => "not_admitted",
            ApiError::QueueTokenExpired => "queue_token_expired",
            ApiError::QueueUnavailable(_) => "queue_unavailable",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    /// The caller's place in line, on `not_admitted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::SeatUnavailable
            | ApiError::InsufficientPoints { .. }
            | ApiError::AlreadyPaid
            | ApiError::AlreadyCancelled => StatusCode::CONFLICT,
            ApiError::HoldExpired => StatusCode::GONE,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::QueueDisabled => StatusCode::NOT_FOUND,
            ApiError::QueueTokenRequired(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotAdmitted { .. } | ApiError::QueueTokenExpired => StatusCode::FORBIDDEN,
            ApiError::QueueUnavailable(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(_) | ApiError::Unavailable(_) | ApiError::QueueUnavailable(_) =
            self
        {
            log::error!("code={} error=\"{}\"", self.code(), cause_chain(self));
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::MethodNotAllowed(allowed) => {
                response.insert_header(header::Allow(allowed.clone()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                position: match self {
                    ApiError::NotAdmitted { position } => Some(*position),
                    _ => None,
                },
            },
        })
    }
}

fn method_list(methods: &[Method]) -> String {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    names.join(", ")
}

/// `outer: inner: innermost`, for logs.
pub use pg_outbox::error::cause_chain;

impl From<crate::domain::InvalidInput> for ApiError {
    fn from(error: crate::domain::InvalidInput) -> Self {
        ApiError::Validation(error.0)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        match error {
            diesel::result::Error::NotFound => ApiError::NotFound("resource"),
            other => ApiError::internal(other),
        }
    }
}

/// Every failure of the waiting queue is Redis not answering (or not as the scripts expect).
impl From<crate::queue::QueueError> for ApiError {
    fn from(error: crate::queue::QueueError) -> Self {
        ApiError::QueueUnavailable(Box::new(error))
    }
}
