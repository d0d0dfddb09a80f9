//! When to try a failed delivery again: exponential backoff with jitter, never sooner than the
//! receiver's `Retry-After`.

use std::time::Duration;

/// Delay before the attempt after `attempts` failed ones: `base * 2^(attempts-1)` capped at
/// `max`, then "equal jitter" (a random point in the upper half), so relays that failed
/// together do not retry together.
pub fn delay_after(
    attempts: i32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let ceiling = exponential(attempts, base, max);
    let half = ceiling / 2;
    let jittered = half + half.mul_f64(fastrand::f64());
    match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// A receiver cannot park an event for longer than this with `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

fn exponential(attempts: i32, base: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    base.saturating_mul(1 << doublings).min(max)
}

/// The longest time a delivery can spend being retried before it is parked as dead.
pub fn retry_window(base: Duration, max: Duration, max_attempts: i32) -> Duration {
    (1..max_attempts)
        .map(|attempt| exponential(attempt, base, max))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn delays_double_within_their_jitter_band_and_stop_at_the_cap() {
        for (attempts, ceiling_ms) in [(1, 100), (2, 200), (5, 1_600), (30, 10_000)] {
            for _ in 0..100 {
                let delay = delay_after(attempts, BASE, MAX, None).as_millis();
                assert!(
                    delay >= ceiling_ms / 2 && delay <= ceiling_ms,
                    "{attempts}: {delay}"
                );
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_but_bounded() {
        let asked = Some(Duration::from_secs(30));
        assert!(delay_after(1, BASE, MAX, asked) >= Duration::from_secs(30));
        let absurd = Some(Duration::from_secs(86_400 * 365));
        assert_eq!(delay_after(1, BASE, MAX, absurd), MAX_RETRY_AFTER);
    }

    #[test]
    fn the_retry_window_sums_every_wait() {
        assert_eq!(
            retry_window(BASE, MAX, 4),
            Duration::from_millis(100 + 200 + 400)
        );
    }
}
