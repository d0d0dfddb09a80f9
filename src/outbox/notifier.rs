//! What the user notifier receives for a reservation event: `{"event_id", "user_id",
//! "reservation_id", "message"}`, built from the event's payload.

use super::events::RESERVATION_CANCELLED;
use pg_outbox::relay::store::ClaimedDelivery;
use pg_outbox::relay::Rendered;
use serde_json::{json, Value};

/// The notifier's body for one event (a [`pg_outbox::relay::RenderBody`]).
pub fn notifier_message(delivery: &ClaimedDelivery) -> Rendered<'_> {
    let facts = NoticeFacts::read(&delivery.payload);
    Rendered::Built(json!({
        "event_id": delivery.event_id,
        "user_id": facts.user_id,
        "reservation_id": delivery.aggregate_id,
        "message": message(delivery, &facts),
    }))
}

/// The fields of an event's payload that the user notifier's message is made of, read as
/// typed values instead of looked up by key. A payload without one (never one the payment
/// or the refund wrote) gives `None`, shown as JSON `null`.
#[derive(Debug, Default, serde::Deserialize)]
struct NoticeFacts {
    user_id: Option<i64>,
    seat_no: Option<i64>,
    amount: Option<i64>,
}

impl NoticeFacts {
    fn read(payload: &Value) -> NoticeFacts {
        serde::Deserialize::deserialize(payload).unwrap_or_default()
    }
}

fn message(delivery: &ClaimedDelivery, facts: &NoticeFacts) -> String {
    let shown = |value: Option<i64>| value.map_or_else(|| "null".to_string(), |v| v.to_string());
    let (amount, seat) = (shown(facts.amount), shown(facts.seat_no));
    match delivery.event_type.as_str() {
        RESERVATION_CANCELLED => format!(
            "Reservation {} for seat {seat} was cancelled; {amount} points were refunded.",
            delivery.aggregate_id
        ),
        _ => format!(
            "Payment of {amount} points completed: seat {seat} is yours (reservation {}).",
            delivery.aggregate_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::events::RESERVATION_CONFIRMED;

    fn delivery(event_type: &str, payload: Value) -> ClaimedDelivery {
        ClaimedDelivery {
            outbox_id: 1,
            attempts: 1,
            event_id: uuid::Uuid::nil(),
            event_type: event_type.into(),
            aggregate_id: 42,
            payload,
            trace_context: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_notifier_gets_the_user_and_a_message_read_from_the_typed_payload() {
        let paid = delivery(
            RESERVATION_CONFIRMED,
            json!({"user_id": 3, "seat_no": 7, "amount": 1000, "concert_id": 1}),
        );
        let body = serde_json::to_value(notifier_message(&paid)).unwrap();
        assert_eq!(body["user_id"], 3);
        assert_eq!(body["reservation_id"], 42);
        assert_eq!(
            body["message"],
            "Payment of 1000 points completed: seat 7 is yours (reservation 42)."
        );
        let cancelled = delivery(RESERVATION_CANCELLED, json!({}));
        let body = serde_json::to_value(notifier_message(&cancelled)).unwrap();
        assert_eq!(body["user_id"], Value::Null);
        assert_eq!(
            body["message"],
            "Reservation 42 for seat null was cancelled; null points were refunded."
        );
    }
}
