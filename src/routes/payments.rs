use crate::app_state::AppState;
use crate::auth::AuthenticatedUser;
use crate::domain::EntityId;
use crate::error::ApiError;
use crate::payments::{
    earlier_payment, pay_and_wake_relays, IdempotencyKey, PaymentError, PaymentReceipt,
};
use crate::routes::{with_db, ErrorBody};
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(pay);
}

/// A confirmed payment's receipt, in either topology.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentBody {
    pub payment_id: i64,
    pub reservation_id: i64,
    pub amount: i64,
    /// The balance right after this payment.
    pub balance: i64,
    /// Always `confirmed`.
    pub status: &'static str,
}

/// The request's `Idempotency-Key` header, if it has one; a malformed one is 400.
pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Validation("Idempotency-Key must be visible ASCII".into()))?;
    Ok(Some(IdempotencyKey::try_from(text)?))
}

/// `IdempotencyKey::try_from`'s rule for the document: 1 to 255 visible ASCII characters. It
/// sits by the header it describes; the test below holds the two together.
impl utoipa::PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(r"^[\x21-\x7e]+$"))
            .into()
    }
}

impl ToSchema for IdempotencyKey {}

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
            PaymentError::Database(e) => e.into(),
        }
    }
}

/// Pays for a held reservation with points, in one transaction with its outbox event.
#[utoipa::path(tag = "reservations", security(("user_token" = [])), params(
    ("id" = inline(EntityId), Path, description = "reservation id"),
    ("Idempotency-Key" = inline(Option<IdempotencyKey>), Header, nullable = false, description = "same key, same answer, one payment"),
    ("Queue-Token" = Option<String>, Header, nullable = false, description = "the caller's active queue token; required when the waiting queue is on, and expired by the confirmed payment"),
), responses(
    (status = 200, description = "confirmed", body = PaymentBody),
    (status = 400, description = "validation_failed: the id is not an integer in range, or a bad Idempotency-Key", body = ErrorBody),
    (status = 401, description = "unauthorized, or queue_token_required (no Queue-Token of the caller's)", body = ErrorBody),
    (status = 403, description = "not_admitted (still waiting; with the position) or queue_token_expired", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 409, description = "insufficient_points, already_paid or already_cancelled", body = ErrorBody),
    (status = 410, description = "hold_expired", body = ErrorBody),
    (status = 422, description = "idempotency_key_reused", body = ErrorBody),
    (status = 503, description = "service_unavailable, or queue_unavailable", body = ErrorBody),
))]
#[post("/reservations/{id}/payment")]
async fn pay(
    state: web::Data<AppState>,
    user: AuthenticatedUser,
    path: web::Path<EntityId>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let reservation_id = path.into_inner();
    let key = idempotency_key(&req)?;
    // With the queue on, a retried payment is answered from its receipt before the queue is
    // asked: the payment ended its turn, so the retry must neither be refused for that nor end
    // the turn the user may have since.
    if let (Some(_), Some(key)) = (&state.queue, key.clone()) {
        let earlier = with_db(&state, move |conn| {
            earlier_payment(conn, user.id, reservation_id, &key)
        })
        .await?;
        if let Some(receipt) = earlier {
            return Ok(HttpResponse::Ok().json(PaymentBody::from(receipt)));
        }
    }
    let turn = super::queue_turn::require_active_turn(&state, &req, user.id).await?;
    let trace_context = crate::trace::trace_context(&req);
    let traceparent = trace_context.clone();
    let relays = state.relay_waker.clone();
    let receipt = with_db(&state, move |conn| {
        let key = key.as_ref();
        pay_and_wake_relays(
            conn,
            &relays,
            user.id,
            reservation_id,
            key,
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
    super::queue_turn::end_turn_after_payment(&state, user.id, turn).await;
    Ok(HttpResponse::Ok().json(PaymentBody::from(receipt)))
}

impl From<PaymentReceipt> for PaymentBody {
    fn from(receipt: PaymentReceipt) -> Self {
        PaymentBody {
            payment_id: receipt.payment_id,
            reservation_id: receipt.reservation_id,
            amount: receipt.amount,
            balance: receipt.balance,
            status: "confirmed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_schema_states_the_keys_rule() {
        let schema =
            serde_json::to_value(<IdempotencyKey as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            (schema["minLength"].as_u64(), schema["maxLength"].as_u64()),
            (Some(1), Some(255))
        );
        assert!(IdempotencyKey::try_from("!".repeat(255).as_str()).is_ok());
        assert!(IdempotencyKey::try_from("~".repeat(256).as_str()).is_err());
        for refused in ["", " ", "a b", "é", "\u{7f}"] {
            assert!(IdempotencyKey::try_from(refused).is_err(), "{refused:?}");
        }
    }
}
