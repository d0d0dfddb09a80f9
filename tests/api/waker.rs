//! Waking relays after commits: every wake-up is answered by a NOTIFY that starts after it,
//! wake-ups arriving while one is on its way coalesce into exactly one more, and a stopped
//! waker answers what came before the stop and nothing after.
use crate::helpers::TestDb;
use concert_outbox::db::build_pool;
use diesel::prelude::*;
use pg_outbox::waker::RelayWaker;
use std::time::{Duration, Instant};

/// Notifications received on `listener`: waits up to 10 s for the first, then until none has
/// come for `quiet`.
fn notifications_until_quiet(listener: &mut PgConnection, quiet: Duration) -> usize {
    let started = Instant::now();
    let (mut received, mut last) = (0, None::<Instant>);
    loop {
        for notification in listener.notifications_iter() {
            notification.unwrap();
            received += 1;
            last = Some(Instant::now());
        }
        match last {
            Some(at) if at.elapsed() >= quiet => return received,
            None if started.elapsed() >= Duration::from_secs(10) => return 0,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn listen(db: &TestDb) -> PgConnection {
    let mut listener = db.connect();
    diesel::sql_query("LISTEN outbox_events")
        .execute(&mut listener)
        .unwrap();
    listener
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_wake_up_is_answered_by_one_notification() {
    let db = TestDb::create();
    let mut listener = listen(&db);
    let waker = RelayWaker::spawn(build_pool(&db.url, 1).unwrap());
    for _ in 0..3 {
        waker.wake();
        let received = tokio::task::block_in_place(|| {
            notifications_until_quiet(&mut listener, Duration::from_millis(300))
        });
        assert_eq!(received, 1);
    }
}

/// The waker's only connection is busy, so its first NOTIFY cannot go out; 99 wake-ups from
/// 4 threads arrive meanwhile. Once the connection is free, the first NOTIFY goes, then exactly
/// one more for the 99: each of them is answered by a NOTIFY that started after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_during_a_notification_are_answered_by_exactly_one_more() {
    let db = TestDb::create();
    let mut listener = listen(&db);
    let pool = build_pool(&db.url, 1).unwrap();
    let busy = pool.get().unwrap();
    let waker = RelayWaker::spawn(pool);
    waker.wake();
    // The task has taken the first wake-up once it is no longer pending; it then waits for
    // the connection.
    crate::helpers::eventually(
        "the waker to take the first wake-up",
        Duration::from_secs(10),
        || {
            let taken = !waker.has_unanswered_wake_up();
            async move { taken.then_some(()) }
        },
    )
    .await;
    let burst: Vec<_> = (0..4)
        .map(|thread| {
            let waker = waker.clone();
            std::thread::spawn(move || {
                (0..24 + usize::from(thread == 0)).for_each(|_| waker.wake())
            })
        })
        .collect();
    burst.into_iter().for_each(|thread| thread.join().unwrap());
    drop(busy);
    let received = tokio::task::block_in_place(|| {
        notifications_until_quiet(&mut listener, Duration::from_millis(500))
    });
    assert_eq!(received, 2, "100 wake-ups, two NOTIFYs");
}

/// Notifications received on `listener` within `window`.
fn notifications_within(listener: &mut PgConnection, window: Duration) -> usize {
    let started = Instant::now();
    let mut received = 0;
    while started.elapsed() < window {
        received += listener.notifications_iter().map(Result::unwrap).count();
        std::thread::sleep(Duration::from_millis(5));
    }
    received
}

/// Stopping is the API's last step of a shutdown: the wake-up of the last request is still
/// answered, then the task ends and nothing more is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_waker_answers_the_wake_up_before_the_stop_and_nothing_after() {
    let db = TestDb::create();
    let mut listener = listen(&db);
    let waker = RelayWaker::spawn(build_pool(&db.url, 1).unwrap());
    waker.wake();
    tokio::time::timeout(Duration::from_secs(10), waker.stop())
        .await
        .expect("the waker's task ends");
    let received = tokio::task::block_in_place(|| {
        notifications_until_quiet(&mut listener, Duration::from_millis(300))
    });
    assert_eq!(received, 1, "the wake-up before the stop is answered");
    waker.wake();
    let late = tokio::task::block_in_place(|| {
        notifications_within(&mut listener, Duration::from_millis(500))
    });
    assert_eq!(late, 0, "no task is left to answer a wake-up");
}
