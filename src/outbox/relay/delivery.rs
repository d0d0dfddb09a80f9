//! The HTTP side: render a destination's body, POST it, and classify the answer.

use super::config::{BodyFormat, DestinationConfig};
use super::store::ClaimedDelivery;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// What a destination's answer means for the events it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx, or 409 (the receiver already has it): acknowledge.
    Delivered,
    /// Connect error, timeout, 5xx, 408, 429: try again later, never give up.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Another 4xx: the receiver refuses this content; dead after the maximum attempts.
    Rejected { error: String },
}

impl Verdict {
    pub fn from_status(status: StatusCode, retry_after: Option<Duration>) -> Verdict {
        let error = format!("HTTP {status}");
        match status.as_u16() {
            200..=299 | 409 => Verdict::Delivered,
            408 | 429 | 500..=599 => Verdict::Retry { error, retry_after },
            400..=499 => Verdict::Rejected { error },
            _ => Verdict::Retry { error, retry_after },
        }
    }
}

/// The JSON a destination receives for one event: the payload itself, borrowed (a drain
/// serialises tens of thousands of them a second, and copying each first cost CPU the
/// database needed), or a body built from it.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Rendered<'a> {
    Payload(&'a Value),
    Built(Value),
}

/// A request body: one event, or a batch as a JSON array.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum Body<'a> {
    One(Rendered<'a>),
    Batch(Vec<Rendered<'a>>),
}

/// The JSON a destination receives for one event.
pub fn render(format: BodyFormat, delivery: &ClaimedDelivery) -> Rendered<'_> {
    match format {
        BodyFormat::Event => Rendered::Payload(&delivery.payload),
        BodyFormat::NotifierMessage => {
            let facts = NoticeFacts::read(&delivery.payload);
            Rendered::Built(json!({
                "event_id": delivery.event_id,
                "user_id": facts.user_id,
                "reservation_id": delivery.aggregate_id,
                "message": notifier_message(delivery, &facts),
            }))
        }
    }
}

/// The fields of an event's payload that the user notifier's message is made of, read as
/// typed values instead of looked up by key. A payload without one (never one the payment
/// or the refund wrote) gives `None`, shown as it was before: JSON `null`.
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

fn notifier_message(delivery: &ClaimedDelivery, facts: &NoticeFacts) -> String {
    let shown = |value: Option<i64>| value.map_or_else(|| "null".to_string(), |v| v.to_string());
    let (amount, seat) = (shown(facts.amount), shown(facts.seat_no));
    match delivery.event_type.as_str() {
        crate::outbox::events::RESERVATION_CANCELLED => format!(
            "Reservation {} for seat {seat} was cancelled; {amount} points were refunded.",
            delivery.aggregate_id
        ),
        _ => format!(
            "Payment of {amount} points completed: seat {seat} is yours (reservation {}).",
            delivery.aggregate_id
        ),
    }
}

/// POSTs `events` to `destination`: one object alone, or a JSON array as a batch. Every body
/// names its event in `event_id`, so the receiver can drop duplicates. `Idempotency-Key` is
/// the event id for a single event, and for a batch a UUID derived from its event ids (the
/// same batch always gets the same key; the ids themselves are in the body).
pub async fn post(
    client: &reqwest::Client,
    destination: &DestinationConfig,
    events: &[&ClaimedDelivery],
) -> Verdict {
    let (body, key, traceparent) = match events {
        [single] => (
            Body::One(render(destination.format, single)),
            single.event_id.to_string(),
            single.trace_context.as_deref(),
        ),
        // A batch mixes traces, so only a single delivery carries its event's trace context.
        many => (
            Body::Batch(many.iter().map(|d| render(destination.format, d)).collect()),
            batch_key(many).to_string(),
            None,
        ),
    };
    let mut request = client
        .post(&destination.url)
        .header("Idempotency-Key", &key)
        .json(&body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    match request.send().await {
        Ok(response) => {
            log::debug!(
                "delivery answered destination={} status={} events={} idempotency_key={key} traceparent={}",
                destination.name,
                response.status().as_u16(),
                events.len(),
                traceparent.unwrap_or("-")
            );
            let retry_after = retry_after(response.headers());
            Verdict::from_status(response.status(), retry_after)
        }
        Err(error) => Verdict::Retry {
            error: describe(&error),
            retry_after: None,
        },
    }
}

/// A stable key for a batch: UUID v5 over its event ids in order.
fn batch_key(events: &[&ClaimedDelivery]) -> uuid::Uuid {
    let ids: Vec<u8> = events
        .iter()
        .flat_map(|d| d.event_id.into_bytes())
        .collect();
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &ids)
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    format!("{kind}: {}", crate::error::cause_chain(error))
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            crate::outbox::events::RESERVATION_CONFIRMED,
            json!({"user_id": 3, "seat_no": 7, "amount": 1000, "concert_id": 1}),
        );
        let body = serde_json::to_value(render(BodyFormat::NotifierMessage, &paid)).unwrap();
        assert_eq!(body["user_id"], 3);
        assert_eq!(body["reservation_id"], 42);
        assert_eq!(
            body["message"],
            "Payment of 1000 points completed: seat 7 is yours (reservation 42)."
        );
        let cancelled = delivery(crate::outbox::events::RESERVATION_CANCELLED, json!({}));
        let body = serde_json::to_value(render(BodyFormat::NotifierMessage, &cancelled)).unwrap();
        assert_eq!(body["user_id"], Value::Null);
        assert_eq!(
            body["message"],
            "Reservation 42 for seat null was cancelled; null points were refunded."
        );
    }

    #[test]
    fn answers_are_classified_as_the_contract_says() {
        let v = |code| Verdict::from_status(StatusCode::from_u16(code).unwrap(), None);
        assert_eq!(v(200), Verdict::Delivered);
        assert_eq!(v(202), Verdict::Delivered);
        assert_eq!(v(409), Verdict::Delivered);
        for retryable in [408, 429, 500, 502, 503] {
            assert!(matches!(v(retryable), Verdict::Retry { .. }), "{retryable}");
        }
        for refused in [400, 401, 404, 413, 422] {
            assert!(matches!(v(refused), Verdict::Rejected { .. }), "{refused}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }
}
