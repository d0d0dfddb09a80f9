//! The split under faults: 300 payment sagas at once while one service is SIGKILLed and
//! restarted twice. Once the system is quiet, no reservation is left `payment_pending` and the
//! books of the two databases hold.
use crate::helpers::{eventually, join_all};
use crate::nats::NatsNode;
use crate::split_helpers::{Bus, Split, SplitUser};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_secs(60);
const SAGAS: usize = 300;
const USERS: usize = 30;
/// 700 points pay for 7 of each user's 10 seats: some sagas confirm, some are declined.
const POINTS: i64 = 700;

#[derive(Clone, Copy)]
enum Victim {
    Payment,
    Reservation,
}

/// 300 holds, then 300 payments at once; `victim` is SIGKILLed and restarted twice while
/// they run.
async fn three_hundred_sagas(split: Split, victim: Victim) {
    let split = Arc::new(tokio::sync::Mutex::new(split));
    let (seats, users) = {
        let s = split.lock().await;
        let seats = s.seats(SAGAS, 100).await;
        let mut users = Vec::new();
        for _ in 0..USERS {
            users.push(Arc::new(s.user(POINTS).await));
        }
        (seats, users)
    };
    let mut held: Vec<(Arc<SplitUser>, i64)> = Vec::with_capacity(SAGAS);
    {
        let s = split.lock().await;
        for (n, seat) in seats.iter().enumerate() {
            let user = users[n % USERS].clone();
            let reservation = s.hold(&user, *seat).await;
            held.push((user, reservation));
        }
    }
    let (client, base) = {
        let s = split.lock().await;
        (s.client.clone(), s.url(""))
    };
    let retried = Arc::new(AtomicUsize::new(0));
    let paying: Vec<_> = held
        .into_iter()
        .map(|(user, reservation)| {
            let (client, base, retried) = (client.clone(), base.clone(), retried.clone());
            // A request cut off by the kill is sent again with the same Idempotency-Key, as a
            // client would: it pays once whatever happened to the first.
            async move {
                for _ in 0..100 {
                    let sent = client
                        .post(format!("{base}/reservations/{reservation}/payment"))
                        .bearer_auth(&user.token)
                        .header("Idempotency-Key", format!("pay-{reservation}"))
                        .send()
                        .await;
                    match sent {
                        Ok(answer) if answer.status().as_u16() != 503 => {
                            return answer.status().as_u16()
                        }
                        _ => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await
                        }
                    }
                }
                0
            }
        })
        .collect();
    let payments = tokio::spawn(join_all(paying));

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut s = split.lock().await;
        match victim {
            Victim::Payment => s.payment.sigkill(),
            Victim::Reservation => s.reservation.sigkill(),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        match victim {
            Victim::Payment => s.payment.start().await,
            Victim::Reservation => s.reservation.start().await,
        }
    }
    let statuses = payments.await.unwrap();
    assert_eq!(statuses.len(), SAGAS);
    // The kills hit sagas in flight: payments left pending while payment-svc was down, or
    // requests cut off while reservation-svc was.
    match victim {
        Victim::Payment => assert!(statuses.contains(&202), "{statuses:?}"),
        Victim::Reservation => assert!(retried.load(Ordering::Relaxed) > 0),
    }
    assert!(
        statuses.iter().all(|s| [200, 202, 409, 410].contains(s)),
        "{statuses:?}"
    );

    let s = split.lock().await;
    s.wait_until_quiet(QUIET).await;
    let confirmed = s.assert_books();
    assert!(confirmed > 0, "some sagas confirmed");
    assert!(
        confirmed <= (USERS as i64) * (POINTS / 100),
        "no user paid more than their points allow"
    );
    // Every reservation ended: confirmed, declined, or released.
    let unsettled = s.reservation_db.scalar(
        "SELECT count(*) FROM reservations \
         WHERE status NOT IN ('confirmed', 'payment_failed', 'expired', 'cancelled')",
    );
    assert_eq!(unsettled, 0);
    // The platform got one reservation.confirmed per confirmed reservation.
    let events: HashSet<String> = crate::delivery_helpers::event_ids(
        &s.reservation_db,
        "SELECT event_id::text AS id FROM outbox WHERE event_type = 'reservation.confirmed'",
    );
    assert_eq!(events.len() as i64, confirmed);
    let received = s
        .platform
        .wait_for_all("reservations", &events, QUIET)
        .await;
    assert_eq!(
        received.len() as i64,
        confirmed,
        "one event per confirmation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_sagas_keep_the_books_while_payment_svc_is_killed_twice_over_jetstream() {
    let node = NatsNode::start();
    let split = Split::start(Bus::JetStream(node.url()), &[]).await;
    three_hundred_sagas(split, Victim::Payment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_sagas_keep_the_books_while_reservation_svc_is_killed_twice_over_http() {
    let split = Split::start(Bus::Http, &[]).await;
    three_hundred_sagas(split, Victim::Reservation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saga_that_stops_moving_is_resolved_after_the_timeout_and_counted() {
    let mut split = Split::start(Bus::Http, &[("SAGA_TIMEOUT_SECONDS", "2")]).await;
    let user = split.user(1_000).await;
    let seats = split.seats(1, 100).await;
    let reservation = split.hold(&user, seats[0]).await;
    split.payment.sigkill();
    let (status, _) = split.pay(&user, reservation).await;
    assert_eq!(status, 202);
    eventually("the saga to be resolved", QUIET, || async {
        let now = split.reservation(&user, reservation).await;
        (now["status"] == "expired").then_some(())
    })
    .await;
    let metrics = reqwest::get(split.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        crate::delivery_helpers::sample(
            &metrics,
            r#"saga_resolutions_total{resolution="timeout"}"#
        ),
        1.0,
        "{metrics}"
    );
    split.payment.start().await;
    split.wait_until_quiet(QUIET).await;
    assert_eq!(split.balance(&user).await, 1_000);
    assert_eq!(split.assert_books(), 0);
}
