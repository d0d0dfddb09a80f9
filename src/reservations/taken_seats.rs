//! Seats known to be taken, remembered for at most a second, so that in a rush on a few seats
//! the losers are told 409 without a trip to the database.
//!
//! PostgreSQL stays the only judge of who wins: a remembered seat only ever turns a hold away,
//! never grants one. What a remembered answer can get wrong is bounded: a seat freed by a
//! cancellation in another API process, or in this one while a losing hold was still on its
//! way back (this process forgets its own cancellations, but that hold may remember the seat
//! again), is refused for at most [`REMEMBER_FOR`] longer than it needs to be: no longer than
//! a seat list a user loaded a second ago is out of date. A hold's expiry is never outlived.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The longest a seat is remembered as taken.
pub const REMEMBER_FOR: Duration = Duration::from_secs(1);
/// Entries kept before expired ones are swept (a bound on memory).
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct TakenSeats {
    until: RwLock<HashMap<i64, Instant>>,
}

impl TakenSeats {
    /// Whether `seat_id` was seen taken within the last [`REMEMBER_FOR`] (and, if it was held
    /// here, its hold has not run out since).
    pub fn is_taken(&self, seat_id: i64) -> bool {
        self.until
            .read()
            .ok()
            .and_then(|until| until.get(&seat_id).copied())
            .is_some_and(|until| Instant::now() < until)
    }

    /// Remembers `seat_id` as taken: by a hold that ends at `held_until`, or (with `None`) by
    /// a reservation this process knows nothing more about.
    pub fn remember(&self, seat_id: i64, held_until: Option<DateTime<Utc>>) {
        let mut remember_for = REMEMBER_FOR;
        if let Some(held_until) = held_until {
            let left = (held_until - Utc::now()).to_std().unwrap_or_default();
            remember_for = remember_for.min(left);
        }
        let until = Instant::now() + remember_for;
        if let Ok(mut seats) = self.until.write() {
            if seats.len() >= SWEEP_AT {
                let now = Instant::now();
                seats.retain(|_, until| *until > now);
            }
            seats.insert(seat_id, until);
        }
    }

    /// Forgets `seat_id`, which this process has just freed.
    pub fn forget(&self, seat_id: i64) {
        if let Ok(mut seats) = self.until.write() {
            seats.remove(&seat_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_is_remembered_until_its_hold_ends_and_at_most_a_second() {
        let seats = TakenSeats::default();
        assert!(!seats.is_taken(1));
        seats.remember(1, None);
        seats.remember(2, Some(Utc::now() - chrono::Duration::seconds(1)));
        seats.remember(3, Some(Utc::now() + chrono::Duration::minutes(5)));
        assert!(seats.is_taken(1));
        assert!(!seats.is_taken(2), "its hold already ended");
        assert!(seats.is_taken(3));
        seats.forget(1);
        assert!(!seats.is_taken(1));
        let remembered = seats.until.read().unwrap()[&3];
        assert!(remembered <= Instant::now() + REMEMBER_FOR);
    }

    #[test]
    fn expired_entries_are_swept_once_the_map_is_large() {
        let seats = TakenSeats::default();
        for seat in 0..SWEEP_AT as i64 {
            seats.remember(seat, Some(Utc::now() - chrono::Duration::seconds(1)));
        }
        seats.remember(-1, None);
        assert_eq!(seats.until.read().unwrap().len(), 1);
    }
}
