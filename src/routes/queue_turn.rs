//! The waiting queue's gate on holding and paying, for the handlers: with the queue on, those
//! requests carry `Queue-Token`, the caller's *active* token, and a confirmed payment ends the
//! turn. The queue itself (`crate::queue`) knows nothing of requests or status codes.

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::queue::TokenStatus;
use actix_web::HttpRequest;
use uuid::Uuid;

/// The header naming the caller's queue token.
pub const QUEUE_TOKEN_HEADER: &str = "Queue-Token";

/// Proof that the request named the caller's active token.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub token: Uuid,
}

/// With the queue off, `None`: nothing to check. With it on, the caller's active turn, or the
/// error that says why they may not hold or pay yet. Runs before any database work, so a
/// refused request (or a Redis that does not answer) writes nothing.
pub async fn require_active_turn(
    state: &AppState,
    req: &HttpRequest,
    user_id: i64,
) -> Result<Option<Turn>, ApiError> {
    let Some(queue) = state.queue.as_deref() else {
        return Ok(None);
    };
    let Some(given) = req.headers().get(QUEUE_TOKEN_HEADER) else {
        return Err(ApiError::QueueTokenRequired(
            "this request needs a Queue-Token header",
        ));
    };
    // A header that is not a token cannot be anyone's: the same answer as a stranger's token.
    let not_yours = ApiError::QueueTokenRequired(
        "this Queue-Token is not one of yours; join the queue at POST /queue/tokens",
    );
    let Some(token) = given
        .to_str()
        .ok()
        .and_then(|text| Uuid::parse_str(text.trim()).ok())
    else {
        return Err(not_yours);
    };
    let place = queue.status(user_id, token, false).await?;
    match place.map(|place| (place.status, place.position)) {
        Some((TokenStatus::Active, _)) => Ok(Some(Turn { token })),
        Some((TokenStatus::Waiting, position)) => Err(ApiError::NotAdmitted { position }),
        Some((TokenStatus::Expired, _)) => Err(ApiError::QueueTokenExpired),
        None => Err(not_yours),
    }
}

/// Ends the turn of a user whose payment committed, so the next in line is admitted. Runs
/// after the commit: if Redis fails here the payment stands, and the turn ends by itself at its
/// `active_until`.
pub async fn end_turn_after_payment(state: &AppState, user_id: i64, turn: Option<Turn>) {
    let (Some(queue), Some(turn)) = (state.queue.as_deref(), turn) else {
        return;
    };
    match queue.finish(user_id, turn.token, "paid").await {
        Ok(true) => log::info!("queue turn ended by payment user_id={user_id}"),
        Ok(false) => log::info!("queue turn had already ended before the payment's commit user_id={user_id}"),
        Err(error) => log::warn!(
            "queue turn not ended after a payment; it ends at its active_until user_id={user_id} error=\"{}\"",
            crate::error::cause_chain(&error)
        ),
    }
}
