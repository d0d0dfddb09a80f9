//! Waking relays after commits: every wake-up is answered by a NOTIFY, and bursts coalesce.
use crate::helpers::TestDb;
use concert_outbox::db::build_pool;
use concert_outbox::outbox::waker::RelayWaker;
use diesel::prelude::*;
use std::time::{Duration, Instant};

/// Notifications received on `listener` until none has come for `quiet`.
fn notifications_until_quiet(listener: &mut PgConnection, quiet: Duration) -> usize {
    let (mut received, mut last) = (0, Instant::now());
    while last.elapsed() < quiet {
        for notification in listener.notifications_iter() {
            notification.unwrap();
            received += 1;
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wake_up_is_answered_and_a_burst_costs_only_a_few_notifications() {
    let db = TestDb::create();
    let mut listener = db.connect();
    diesel::sql_query("LISTEN outbox_events")
        .execute(&mut listener)
        .unwrap();
    let waker = RelayWaker::spawn(build_pool(&db.url, 2).unwrap());
    let quiet = Duration::from_millis(300);

    for _ in 0..3 {
        waker.wake();
        let received =
            tokio::task::block_in_place(|| notifications_until_quiet(&mut listener, quiet));
        assert_eq!(received, 1, "one wake-up, one NOTIFY");
    }

    let burst: Vec<_> = (0..8)
        .map(|_| {
            let waker = waker.clone();
            std::thread::spawn(move || (0..100).for_each(|_| waker.wake()))
        })
        .collect();
    burst.into_iter().for_each(|thread| thread.join().unwrap());
    let received = tokio::task::block_in_place(|| notifications_until_quiet(&mut listener, quiet));
    assert!(
        (1..800).contains(&received),
        "800 wake-ups from 8 threads coalesce into fewer NOTIFYs, at least one: got {received}"
    );
}
