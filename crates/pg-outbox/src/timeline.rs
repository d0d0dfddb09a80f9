//! Commit-to-delivery latency over the last minutes, for the operator dashboard's chart: the
//! same observations as the `outbox_commit_to_delivery_seconds` histogram, kept per 10-second
//! slot so a slot's percentiles can be read back (a Prometheus histogram only adds up).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Width of one slot of the timeline.
pub const SLOT: Duration = Duration::from_secs(10);
/// Slots kept: ten minutes.
pub const SLOTS: usize = 60;
/// Bucket `k` holds latencies up to `FIRST_BOUND_MS * 2^(k/2)`: 0.5 ms .. ~46 s in 34 steps,
/// so a percentile read from its bucket's bound is within a factor of 1.42 of the truth.
const BUCKETS: usize = 34;
const FIRST_BOUND_MS: f64 = 0.5;

/// One slot's figures, read back from its buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotSummary {
    /// Start of the slot, seconds since the Unix epoch.
    pub start_unix: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Default)]
pub struct Timeline {
    slots: Mutex<VecDeque<Slot>>,
}

struct Slot {
    index: u64,
    counts: [u64; BUCKETS],
}

impl Timeline {
    pub fn record(&self, latency: Duration) {
        self.record_at(SystemTime::now(), latency);
    }

    fn record_at(&self, now: SystemTime, latency: Duration) {
        let index = slot_index(now);
        let Ok(mut slots) = self.slots.lock() else {
            return; // a panic elsewhere poisoned it: losing chart points beats failing a delivery
        };
        if slots.back().is_none_or(|slot| slot.index < index) {
            slots.push_back(Slot {
                index,
                counts: [0; BUCKETS],
            });
            while slots.len() > SLOTS {
                slots.pop_front();
            }
        }
        if let Some(slot) = slots.iter_mut().rev().find(|slot| slot.index == index) {
            slot.counts[bucket_of(latency)] += 1;
        }
    }

    /// Every slot of the last ten minutes, oldest first; a slot without deliveries has 0s.
    pub fn recent(&self) -> Vec<SlotSummary> {
        self.recent_at(SystemTime::now())
    }

    fn recent_at(&self, now: SystemTime) -> Vec<SlotSummary> {
        let newest = slot_index(now);
        let oldest = newest.saturating_sub(SLOTS as u64 - 1);
        let slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        (oldest..=newest)
            .map(|index| {
                let counts = slots.iter().find(|s| s.index == index).map(|s| s.counts);
                summarise(index, &counts.unwrap_or([0; BUCKETS]))
            })
            .collect()
    }
}

fn slot_index(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / SLOT.as_secs()
}

fn bound_ms(bucket: usize) -> f64 {
    FIRST_BOUND_MS * 2f64.powf(bucket as f64 / 2.0)
}

fn bucket_of(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1000.0;
    (0..BUCKETS)
        .find(|&k| ms <= bound_ms(k))
        .unwrap_or(BUCKETS - 1)
}

fn summarise(index: u64, counts: &[u64; BUCKETS]) -> SlotSummary {
    let deliveries: u64 = counts.iter().sum();
    let percentile = |p: f64| {
        if deliveries == 0 {
            return 0.0;
        }
        let rank = (p * deliveries as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (k, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bound_ms(k);
            }
        }
        bound_ms(BUCKETS - 1)
    };
    SlotSummary {
        start_unix: index * SLOT.as_secs(),
        deliveries,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_slot_reads_back_its_percentiles_within_a_bucket() {
        let timeline = Timeline::default();
        for ms in 1..=100 {
            timeline.record_at(at(1_000), Duration::from_millis(ms));
        }
        let recent = timeline.recent_at(at(1_005));
        assert_eq!(recent.len(), SLOTS);
        let slot = recent.last().copied().unwrap();
        assert_eq!((slot.start_unix, slot.deliveries), (1_000, 100));
        assert!((50.0..=50.0 * 1.42).contains(&slot.p50_ms), "{slot:?}");
        assert!((99.0..=99.0 * 1.42).contains(&slot.p99_ms), "{slot:?}");
    }

    #[test]
    fn slots_older_than_ten_minutes_are_forgotten_and_quiet_slots_are_zero() {
        let timeline = Timeline::default();
        timeline.record_at(at(1_000), Duration::from_millis(5));
        timeline.record_at(at(1_000 + 600), Duration::from_millis(5));
        let recent = timeline.recent_at(at(1_000 + 600));
        assert_eq!(recent.iter().map(|s| s.deliveries).sum::<u64>(), 1);
        assert_eq!(recent[0].deliveries, 0);
        assert_eq!(recent[0].p99_ms, 0.0);
    }

    #[test]
    fn a_latency_beyond_the_last_bound_lands_in_the_last_bucket() {
        assert_eq!(bucket_of(Duration::from_secs(3600)), BUCKETS - 1);
        assert_eq!(bucket_of(Duration::ZERO), 0);
    }
}
