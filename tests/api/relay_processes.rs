//! The relay as real processes: killed with SIGKILL mid-stream, three at once, stopped with
//! SIGTERM. Nothing committed may be lost, per-aggregate order must hold.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, TestDb};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const DRAIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkilling_the_relay_mid_stream_again_and_again_loses_nothing() {
    let platform = MockPlatform::start().await;
    platform.set_faults(json!({"latency_ms": 15})).await;
    let db = TestDb::create();
    let expected = write_events(&db, 100, 3);
    let mut env = relay_env(&db, &platform.url);
    env.push(("RELAY_BATCH_SIZE".into(), "10".into()));
    env.push(("DATA_PLATFORM_BATCH".into(), "false".into()));
    for round in 0..4 {
        let relay = RelayProcess::start(&env);
        let before = platform.event_ids("reservations").await.len();
        eventually(&format!("progress in round {round}"), DRAIN, || async {
            (platform.event_ids("reservations").await.len() > before).then_some(())
        })
        .await;
        relay.sigkill();
    }
    assert!(
        db.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL") > 0,
        "killed mid-stream"
    );
    let _survivor = RelayProcess::start(&env);
    platform
        .assert_all_delivered_in_order(&db, &expected, DRAIN)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_relays_at_once_lose_nothing_keep_order_and_rarely_duplicate() {
    let platform = MockPlatform::start().await;
    platform
        .set_faults(json!({"fail_rate": 0.1, "latency_ms": 2}))
        .await;
    let db = TestDb::create();
    let expected = write_events(&db, 100, 4);
    let mut env = relay_env(&db, &platform.url);
    env.push(("RELAY_BATCH_SIZE".into(), "10".into()));
    let _relays: Vec<_> = (0..3).map(|_| RelayProcess::start(&env)).collect();

    platform
        .assert_all_delivered_in_order(&db, &expected, DRAIN)
        .await;
    let duplicates =
        platform.duplicates("reservations").await + platform.duplicates("notifications").await;
    assert!(
        duplicates <= 8,
        "{duplicates} duplicates for 800 deliveries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_the_in_flight_batch_releases_the_unsent_rest_and_exits_zero() {
    let platform = MockPlatform::start().await;
    // Every answer takes 1.5 s, well inside the 4 s a stopping relay gives its requests.
    platform.set_faults(json!({"latency_ms": 1500})).await;
    let db = TestDb::create();
    let expected = write_events(&db, 20, 1);
    let mut env = relay_env(&db, &platform.url);
    // A stopping relay gives its requests one request timeout (the lease must outlast two).
    env.retain(|(k, _)| k != "RELAY_REQUEST_TIMEOUT_MS" && k != "RELAY_LEASE_SECONDS");
    env.push(("RELAY_REQUEST_TIMEOUT_MS".into(), "4000".into()));
    env.push(("RELAY_LEASE_SECONDS".into(), "11".into()));
    env.push(("RELAY_WORKERS".into(), "1".into()));
    // The data platform gets its claim as one batch POST. Notifications go one at a time,
    // 20 of them at 1.5 s each: most cannot be sent before the 4 s are up.
    env.push(("NOTIFY_BATCH".into(), "false".into()));
    env.push(("RELAY_CONCURRENCY".into(), "1".into()));
    let relay = RelayProcess::start(&env);
    eventually("both destinations' claims in flight", DRAIN, || async {
        let leased = "SELECT count(DISTINCT destination) FROM outbox_deliveries \
                      WHERE lease_token IS NOT NULL";
        (db.scalar(leased) == 2).then_some(())
    })
    .await;
    assert!(
        platform.event_ids("reservations").await.is_empty(),
        "the batch is still unanswered when SIGTERM arrives"
    );
    let status = relay.sigterm();
    assert!(status.success(), "{status:?}");

    let reservations: HashSet<String> = platform
        .event_ids("reservations")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        reservations, expected,
        "the in-flight batch reached the platform"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE destination = 'data_platform'"),
        0,
        "and was acknowledged before the relay exited"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE lease_token IS NOT NULL"),
        0,
        "nothing left leased"
    );
    let released = db.scalar(
        "SELECT count(*) FROM outbox_deliveries \
         WHERE destination = 'notification' AND status = 'pending' AND attempts = 0",
    );
    assert!(
        released > 0,
        "the notifications not sent in time were released"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE attempts > 0"),
        0,
        "every claimed delivery was either acknowledged or released, its attempt not counted"
    );
    let acknowledged = event_ids(
        &db,
        "SELECT o.event_id::text AS id FROM outbox o WHERE NOT EXISTS ( \
             SELECT 1 FROM outbox_deliveries d \
             WHERE d.outbox_id = o.id AND d.destination = 'notification')",
    );
    let notified: HashSet<String> = platform
        .event_ids("notifications")
        .await
        .into_iter()
        .collect();
    assert!(
        acknowledged.is_subset(&notified),
        "only notifications the platform answered for were acknowledged"
    );

    // Released, not lost: the next relay delivers them.
    platform.set_faults(json!({"latency_ms": 0})).await;
    let _next = RelayProcess::start(&relay_env(&db, &platform.url));
    platform
        .assert_all_delivered_in_order(&db, &expected, DRAIN)
        .await;
}
