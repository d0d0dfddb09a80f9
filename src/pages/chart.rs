//! The dashboard's latency chart: the relay's last ten minutes as two SVG polylines (p50 and
//! p99 per 10-second slot), drawn on the server so the page needs no charting script.

use pg_outbox::timeline::SlotSummary;

pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 160.0;

pub struct LatencyChart {
    pub p50_points: String,
    pub p99_points: String,
    /// The top of the y axis, in milliseconds.
    pub top_ms: String,
    pub deliveries: u64,
    /// The newest slot with deliveries: its p50 and p99 in milliseconds.
    pub latest: Option<(String, String)>,
}

impl LatencyChart {
    pub fn from_slots(slots: &[SlotSummary]) -> LatencyChart {
        let top = nice_top(slots.iter().map(|s| s.p99_ms).fold(0.0, f64::max));
        let line = |value: fn(&SlotSummary) -> f64| {
            let step = WIDTH / (slots.len().max(2) - 1) as f64;
            slots
                .iter()
                .enumerate()
                .map(|(i, slot)| {
                    let y = HEIGHT - (value(slot) / top).min(1.0) * HEIGHT;
                    format!("{:.1},{:.1}", i as f64 * step, y)
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        LatencyChart {
            p50_points: line(|s| s.p50_ms),
            p99_points: line(|s| s.p99_ms),
            top_ms: format_ms(top),
            deliveries: slots.iter().map(|s| s.deliveries).sum(),
            latest: slots
                .iter()
                .rev()
                .find(|s| s.deliveries > 0)
                .map(|s| (format_ms(s.p50_ms), format_ms(s.p99_ms))),
        }
    }
}

/// The first of 10, 25, 50, 100, 250, ... ms at or above `max`, so the axis label reads well.
fn nice_top(max: f64) -> f64 {
    let mut magnitude = 10.0;
    while magnitude < 1e9 {
        for step in [1.0, 2.5, 5.0] {
            if magnitude * step >= max {
                return magnitude * step;
            }
        }
        magnitude *= 10.0;
    }
    magnitude
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(p50_ms: f64, p99_ms: f64, deliveries: u64) -> SlotSummary {
        SlotSummary {
            start_unix: 0,
            deliveries,
            p50_ms,
            p99_ms,
        }
    }

    #[test]
    fn the_axis_covers_the_worst_p99_and_the_lines_span_the_width() {
        let chart = LatencyChart::from_slots(&[slot(0.0, 0.0, 0), slot(4.0, 30.0, 10)]);
        assert_eq!(chart.top_ms, "50 ms");
        assert_eq!(chart.p99_points, "0.0,160.0 600.0,64.0");
        assert_eq!(chart.deliveries, 10);
        assert_eq!(chart.latest, Some(("4.0 ms".into(), "30 ms".into())));
    }

    #[test]
    fn a_quiet_timeline_draws_flat_lines_and_says_so() {
        let chart = LatencyChart::from_slots(&[slot(0.0, 0.0, 0); 60]);
        assert_eq!(chart.deliveries, 0);
        assert!(chart.latest.is_none());
        assert!(chart.p50_points.split(' ').all(|p| p.ends_with(",160.0")));
    }
}
