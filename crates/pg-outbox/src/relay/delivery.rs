//! One HTTP request: render each event's body, POST it, and classify the answer.

use super::destination::Verdict;
use super::dispatch::HttpEndpoint;
use super::store::ClaimedDelivery;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, SystemTime};

impl Verdict {
    /// 2xx, or 409 (the receiver already has it): delivered. Connect error, timeout, 5xx,
    /// 408, 429: retry. Another 4xx: the receiver refuses this content.
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

/// Turns a claimed event into the JSON an HTTP endpoint receives for it.
pub type RenderBody = for<'a> fn(&'a ClaimedDelivery) -> Rendered<'a>;

/// The event's payload exactly as it was written to the outbox.
pub fn event_payload(delivery: &ClaimedDelivery) -> Rendered<'_> {
    Rendered::Payload(&delivery.payload)
}

/// POSTs `events` to `destination`: one object alone, or a JSON array as a batch. Every body
/// names its event in `event_id`, so the receiver can drop duplicates. `Idempotency-Key` is
/// the event id for a single event, and for a batch a UUID derived from its event ids (the
/// same batch always gets the same key; the ids themselves are in the body).
pub async fn post(
    client: &reqwest::Client,
    destination: &HttpEndpoint,
    events: &[&ClaimedDelivery],
) -> Verdict {
    let (body, key, traceparent) = match events {
        [single] => (
            Body::One((destination.render)(single)),
            single.event_id.to_string(),
            single.trace_context.as_deref(),
        ),
        // A batch mixes traces, so only a single delivery carries its event's trace context.
        many => (
            Body::Batch(many.iter().map(|d| (destination.render)(d)).collect()),
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
    if let Some(token) = &destination.bearer_token {
        request = request.bearer_auth(token.expose());
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
