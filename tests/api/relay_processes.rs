//! The relay as real processes: killed with SIGKILL mid-stream, three at once, stopped with
//! SIGTERM. Nothing committed may be lost, per-aggregate order must hold.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, TestDb};
use serde_json::json;
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
async fn sigterm_finishes_the_in_flight_batch_and_exits_zero() {
    let platform = MockPlatform::start().await;
    platform.set_faults(json!({"latency_ms": 300})).await;
    let db = TestDb::create();
    write_events(&db, 50, 1);
    let mut env = relay_env(&db, &platform.url);
    env.push(("DATA_PLATFORM_BATCH".into(), "false".into()));
    env.push(("RELAY_CONCURRENCY".into(), "4".into()));
    let relay = RelayProcess::start(&env);
    eventually("deliveries in flight", DRAIN, || async {
        (db.scalar("SELECT count(*) FROM outbox_deliveries WHERE lease_token IS NOT NULL") > 0)
            .then_some(())
    })
    .await;
    let status = relay.sigterm();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE lease_token IS NOT NULL"),
        0,
        "nothing left leased"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM outbox_deliveries WHERE status = 'pending' AND attempts > 0"
        ),
        0,
        "every claimed delivery was either acknowledged or released"
    );
}
