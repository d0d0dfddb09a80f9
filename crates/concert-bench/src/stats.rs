//! Latency percentiles from recorded durations: sort once, read nearest ranks.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The distribution of one kind of call, in milliseconds (what every report prints).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// `None` when nothing was recorded, so a report never shows made-up zeros.
    pub fn of(mut samples: Vec<Duration>) -> Option<Summary> {
        samples.sort_unstable();
        let max = *samples.last()?;
        Some(Summary {
            count: samples.len(),
            p50_ms: ms(nearest_rank(&samples, 0.50)),
            p95_ms: ms(nearest_rank(&samples, 0.95)),
            p99_ms: ms(nearest_rank(&samples, 0.99)),
            max_ms: ms(max),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// Shows an optional summary, or says that nothing was measured.
pub fn show(summary: &Option<Summary>) -> String {
    summary.map_or_else(|| "no samples".to_owned(), |s| s.to_string())
}

/// The smallest sample with at least `q` of all samples at or below it (nearest rank), so a
/// reported p99 is a latency some call really had.
fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or_default()
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Events (or flows) per second over `elapsed`; zero for an empty interval.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}
