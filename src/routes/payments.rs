use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::payments::{pay_for_reservation, IdempotencyKey, PaymentError};
use crate::routes::with_db;
use crate::startup::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reservations/{id}/payment", web::post().to(pay));
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::NotFound => ApiError::NotFound("reservation"),
            PaymentError::AlreadyPaid => ApiError::AlreadyPaid,
            PaymentError::AlreadyCancelled => ApiError::AlreadyCancelled,
            PaymentError::HoldExpired => ApiError::HoldExpired,
            PaymentError::InsufficientPoints { balance, price } => {
                ApiError::InsufficientPoints { balance, price }
            }
            PaymentError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            PaymentError::Payload(e) => ApiError::internal(e),
            PaymentError::Database(e) => e.into(),
        }
    }
}

async fn pay(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<i64>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let reservation_id = EntityId::parse("reservation id", path.into_inner())?;
    let key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::Validation("Idempotency-Key must be visible ASCII".into())
            })?;
            Some(IdempotencyKey::try_from(text)?)
        }
    };
    let trace_context = crate::trace::trace_context(&req);
    let traceparent = trace_context.clone();
    let receipt = with_db(&state, move |conn| {
        pay_for_reservation(
            conn,
            user.id,
            reservation_id,
            key.as_ref(),
            Some(trace_context),
        )
    })
    .await?;
    log::info!(
        "payment confirmed request_id={} traceparent={traceparent} payment_id={} reservation_id={} user_id={} amount={}",
        crate::trace::request_id(&req),
        receipt.payment_id,
        receipt.reservation_id,
        user.id,
        receipt.amount
    );
    Ok(HttpResponse::Ok().json(json!({
        "payment_id": receipt.payment_id,
        "reservation_id": receipt.reservation_id,
        "amount": receipt.amount,
        "balance": receipt.balance,
        "status": "confirmed",
    })))
}
