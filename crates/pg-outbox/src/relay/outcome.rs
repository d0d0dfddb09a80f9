//! What a round's answers mean for its rows: acknowledge, reschedule, or release.

use super::backoff;
use super::destination::Verdict;
use super::store::{Claim, Failure};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A claim's rows sorted by what the destination answered.
#[derive(Debug, Default)]
pub(super) struct SortedVerdicts {
    /// Accepted (2xx or 409): acknowledge.
    pub delivered: Vec<i64>,
    /// Refused or failed: reschedule with backoff (a refusal counts towards the dead letter).
    pub failures: Vec<Failure>,
    /// Never answered (cut off by shutdown or the lease deadline): release for another try.
    pub unanswered: Vec<i64>,
}

impl SortedVerdicts {
    /// Sorts `verdicts` (outbox id, verdict) of `claim`; each failure's delay grows with the
    /// attempts its row has used, from `backoff_base` up to `backoff_max`.
    pub fn of(
        claim: &Claim,
        verdicts: Vec<(i64, Verdict)>,
        backoff_base: Duration,
        backoff_max: Duration,
    ) -> SortedVerdicts {
        let attempts: HashMap<i64, i32> = claim
            .deliveries
            .iter()
            .map(|d| (d.outbox_id, d.attempts))
            .collect();
        let answered: HashSet<i64> = verdicts.iter().map(|(id, _)| *id).collect();
        let mut sorted = SortedVerdicts {
            unanswered: claim
                .deliveries
                .iter()
                .map(|d| d.outbox_id)
                .filter(|id| !answered.contains(id))
                .collect(),
            ..SortedVerdicts::default()
        };
        for (outbox_id, verdict) in verdicts {
            let attempts = attempts.get(&outbox_id).copied().unwrap_or(1);
            let retry_in = |retry_after| {
                backoff::delay_after(attempts, backoff_base, backoff_max, retry_after)
            };
            match verdict {
                Verdict::Delivered => sorted.delivered.push(outbox_id),
                Verdict::Retry { error, retry_after } => sorted.failures.push(Failure {
                    outbox_id,
                    retry_in: retry_in(retry_after),
                    error,
                    permanent: false,
                }),
                Verdict::Rejected { error } => sorted.failures.push(Failure {
                    outbox_id,
                    retry_in: retry_in(None),
                    error,
                    permanent: true,
                }),
            }
        }
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::store::ClaimedDelivery;

    fn claim_of(attempts: &[(i64, i32)]) -> Claim {
        Claim {
            destination: "webhook".into(),
            token: uuid::Uuid::new_v4(),
            deliveries: attempts
                .iter()
                .map(|&(outbox_id, attempts)| ClaimedDelivery {
                    outbox_id,
                    attempts,
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "order.placed".into(),
                    aggregate_id: outbox_id,
                    payload: serde_json::json!({}),
                    trace_context: None,
                    created_at: chrono::Utc::now(),
                })
                .collect(),
        }
    }

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn each_row_lands_in_exactly_one_pile() {
        let claim = claim_of(&[(1, 1), (2, 1), (3, 1), (4, 1)]);
        let verdicts = vec![
            (1, Verdict::Delivered),
            (
                2,
                Verdict::Retry {
                    error: "HTTP 503".into(),
                    retry_after: None,
                },
            ),
            (
                3,
                Verdict::Rejected {
                    error: "HTTP 422".into(),
                },
            ),
        ];
        let sorted = SortedVerdicts::of(&claim, verdicts, BASE, MAX);
        assert_eq!(sorted.delivered, vec![1]);
        assert_eq!(sorted.unanswered, vec![4]);
        let failed: Vec<(i64, bool)> = sorted
            .failures
            .iter()
            .map(|f| (f.outbox_id, f.permanent))
            .collect();
        assert_eq!(failed, vec![(2, false), (3, true)]);
    }

    #[test]
    fn a_row_that_failed_more_often_waits_longer_and_retry_after_is_honoured() {
        let claim = claim_of(&[(1, 1), (2, 8), (3, 1)]);
        let retry = |retry_after| Verdict::Retry {
            error: "HTTP 429".into(),
            retry_after,
        };
        let verdicts = vec![
            (1, retry(None)),
            (2, retry(None)),
            (3, retry(Some(Duration::from_secs(30)))),
        ];
        let sorted = SortedVerdicts::of(&claim, verdicts, BASE, MAX);
        let delay = |id| {
            sorted
                .failures
                .iter()
                .find(|f| f.outbox_id == id)
                .map(|f| f.retry_in)
        };
        // First failure: within base; eighth: base * 2^7 = 12.8 s, jittered into its upper half.
        assert!(delay(1) <= Some(BASE));
        assert!(delay(2) >= Some(Duration::from_millis(6_400)));
        assert!(delay(3) >= Some(Duration::from_secs(30)));
    }
}
