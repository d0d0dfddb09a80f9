//! W3C trace context: the payment stores the caller's `traceparent` in its outbox row so the
//! relay can forward it, and one payment can be followed to the platform's receipt.

use actix_web::HttpRequest;

/// The request's `traceparent` header when it is well formed (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_context(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("traceparent")?.to_str().ok()?;
    is_traceparent(value).then(|| value.to_owned())
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::is_traceparent;

    #[test]
    fn only_well_formed_traceparents_are_kept() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent("00-xyz-00f067aa0ba902b7-01"));
        assert!(!is_traceparent(""));
    }
}
