//! The relay end to end: real Postgres, the real relay (in-process or as processes), the mock
//! platform over HTTP.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, spawn_app, spawn_app_with, TestDb};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const DRAIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_confirmed_payment_reaches_both_destinations_and_rows_end_up_sent() {
    let platform = MockPlatform::start().await;
    let settings = relay_settings(&platform.url);
    let app = spawn_app_with(&in_process_relay(&settings)).await;
    let schedule = app.create_schedule(20, 100).await;
    let user = app.create_user(10_000).await;
    for seat in app.seat_ids(schedule).await {
        let reservation = app.held(&user, seat).await;
        assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
    }
    let outbox_ids: HashSet<String> = outbox_event_ids(&app.db);
    assert_eq!(outbox_ids.len(), 20);

    platform
        .wait_for_all("reservations", &outbox_ids, DRAIN)
        .await;
    platform
        .wait_for_all("notifications", &outbox_ids, DRAIN)
        .await;
    wait_until_all_sent(&app.db, DRAIN).await;
    let received = platform.received().await;
    let event = &received["reservations"]["events"][0];
    assert_eq!(event["event_type"], "reservation.confirmed");
    assert_eq!(event["user_id"], user.id);
    let notice = &received["notifications"]["events"][0];
    let mut fields: Vec<&str> = notice
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["event_id", "message", "reservation_id", "user_id"]);
}

fn outbox_event_ids(db: &TestDb) -> HashSet<String> {
    event_ids(db, "SELECT event_id::text AS id FROM outbox")
}

/// The reservations that have a payment.
fn paid_reservations(db: &TestDb) -> HashSet<i64> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        reservation_id: i64,
    }
    diesel::sql_query("SELECT reservation_id FROM payments")
        .load::<Row>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|r| r.reservation_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_platform_down_during_500_payments_fails_none_and_gets_every_event_once_later() {
    let platform = MockPlatform::start().await;
    // Down, and slow to say so: a payment that waited on the platform could not answer in time.
    platform
        .set_faults(json!({"down": true, "latency_ms": 5000}))
        .await;
    let mut settings = relay_settings(&platform.url);
    // A healthy platform's answer is never given up on, so a copy it counts as a duplicate
    // would be one the relay sent again after the platform had accepted it.
    settings.retain(|(k, _)| k != "RELAY_REQUEST_TIMEOUT_MS" && k != "RELAY_LEASE_SECONDS");
    settings.push(("RELAY_REQUEST_TIMEOUT_MS".into(), "3000".into()));
    settings.push(("RELAY_LEASE_SECONDS".into(), "10".into()));
    let app = Arc::new(spawn_app_with(&in_process_relay(&settings)).await);
    let schedule = app.create_schedule(500, 10).await;
    let seats = app.seat_ids(schedule).await;
    let users = users_with_points(&app, 25, 1_000).await;

    // 25 clients, each holding and paying its share of the seats in turn. A payment that
    // waited on the platform would not answer within the 2 s each is given.
    let statuses = pay_in_turns(&app, &users, &seats, 20, Duration::from_secs(2)).await;
    assert_eq!(statuses.len(), 500);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        500
    );

    platform
        .set_faults(json!({"down": false, "latency_ms": 0}))
        .await;
    let expected = outbox_event_ids(&app.db);
    let paid = paid_reservations(&app.db);
    assert_eq!((expected.len(), paid.len()), (500, 500));
    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    platform
        .wait_for_all("notifications", &expected, DRAIN)
        .await;
    // Every delivery acknowledged: nothing more will be sent, so the counts below are final.
    wait_until_all_sent(&app.db, DRAIN).await;
    let received = platform.received().await;
    for channel in ["reservations", "notifications"] {
        assert_each_event_stored_once(&received, channel, &expected, &paid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_30_percent_failures_and_latency_all_events_arrive_in_aggregate_order() {
    let platform = MockPlatform::start().await;
    platform
        .set_faults(json!({"fail_rate": 0.3, "latency_ms": 5}))
        .await;
    let db = TestDb::create();
    let expected = write_events(&db, 40, 5);
    let mut env = relay_env(&db, &platform.url);
    // Small batches: some 80 requests, so a 30% failure rate cannot miss them all.
    env.push(("RELAY_BATCH_SIZE".into(), "5".into()));
    let _relay = RelayProcess::start(&env);

    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    wait_until_all_sent(&db, DRAIN).await;
    let received = platform.received().await;
    assert_in_aggregate_order(&received);
    let failed = |channel: &str| received[channel]["failed_requests"].as_u64().unwrap();
    assert!(
        failed("reservations") + failed("notifications") > 0,
        "failures were injected, and every event still arrived: they were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanently_rejected_event_goes_dead_holds_back_only_its_aggregate_and_replays() {
    let platform = MockPlatform::start().await;
    let db = TestDb::create();
    let poison = uuid::Uuid::new_v4().to_string();
    let mut conn = db.connect();
    // The poison is the first event of aggregate 1000, which has a second event behind it.
    for (aggregate, seq, id) in [
        (1000, 0, poison.clone()),
        (1000, 1, uuid::Uuid::new_v4().to_string()),
    ] {
        let event_id: uuid::Uuid = id.parse().unwrap();
        pg_outbox::enqueue_event(&mut conn, &pg_outbox::NewEvent {
            event_id,
            aggregate_type: "reservation",
            aggregate_id: aggregate,
            event_type: "reservation.confirmed",
            payload: json!({"event_id": id, "reservation_id": aggregate, "user_id": 1, "seq": seq}),
            trace_context: None,
        })
        .unwrap();
    }
    let others = write_events(&db, 20, 1).into_iter().collect::<HashSet<_>>();
    platform
        .set_faults(json!({"reject_event_ids": [poison]}))
        .await;
    let mut env = relay_env(&db, &platform.url);
    env.push(("RELAY_MAX_ATTEMPTS".into(), "3".into()));
    let _relay = RelayProcess::start(&env);

    platform.wait_for_all("reservations", &others, DRAIN).await;
    eventually(
        "the poison to go dead on both destinations",
        DRAIN,
        || async {
            (db.scalar("SELECT count(*) FROM outbox_deliveries WHERE status = 'dead'") == 2)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        db.scalar("SELECT min(attempts) FROM outbox_deliveries WHERE status = 'dead'"),
        3
    );
    let status: Value = serde_json::from_str(&relay_command(&db, &["status", "--json"])).unwrap();
    let dead = &status["dead"][0];
    assert_eq!(dead["event_id"], poison.as_str());
    assert_eq!(
        dead["blocked_events"], 1,
        "the aggregate's later event waits behind it, visibly"
    );
    assert!(dead["last_error"].as_str().unwrap().contains("422"));
    assert_eq!(status["destinations"][0]["dead"], 1);
    let text = relay_command(&db, &["status"]);
    assert!(
        text.contains("dead deliveries") && text.contains(&poison),
        "{text}"
    );

    platform.set_faults(json!({"reject_event_ids": []})).await;
    let outbox_id = db
        .scalar(&format!(
            "SELECT id FROM outbox WHERE event_id = '{poison}'"
        ))
        .to_string();
    assert!(relay_command(&db, &["replay-dead", "--id", &outbox_id]).contains("re-queued 2"));
    wait_until_all_sent(&db, DRAIN).await;
    let arrived = platform.event_ids("reservations").await;
    let position = |id: &str| arrived.iter().position(|a| a == id).unwrap();
    let second: String = platform.received().await["reservations"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reservation_id"] == 1000 && e["seq"] == 1)
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        position(&poison) < position(&second),
        "replayed with its id, still first of its aggregate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_destination_down_does_not_delay_the_other() {
    let (platform, notifier) = (MockPlatform::start().await, MockPlatform::start().await);
    notifier
        .set_faults(json!({"down": true, "latency_ms": 900}))
        .await;
    let db = TestDb::create();
    let expected = write_events(&db, 50, 2);
    let mut env = relay_env(&db, &platform.url);
    env.push(("NOTIFY_URL".into(), notifier.url.clone()));
    env.push(("DATA_PLATFORM_BATCH".into(), "false".into()));
    env.push(("NOTIFY_BATCH".into(), "false".into()));
    let _relay = RelayProcess::start(&env);

    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    // The platform has every event; its acknowledgements land in the database right after.
    eventually(
        "every data_platform delivery acknowledged",
        DRAIN,
        || async {
            let owed = "SELECT count(*) FROM outbox_deliveries WHERE destination = 'data_platform'";
            (db.scalar(owed) == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE destination = 'notification'"),
        expected.len() as i64,
        "every notification is still owed"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"),
        0,
        "not every destination acknowledged"
    );

    notifier
        .set_faults(json!({"down": false, "latency_ms": 0}))
        .await;
    notifier
        .wait_for_all("notifications", &expected, DRAIN)
        .await;
    wait_until_all_sent(&db, DRAIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_alone_delivers_everything_when_notifications_never_come() {
    let platform = MockPlatform::start().await;
    let db = TestDb::create();
    let mut env = relay_env(&db, &platform.url);
    env.push(("RELAY_LISTEN".into(), "false".into()));
    let _relay = RelayProcess::start(&env);
    let expected = write_events(&db, 30, 2);
    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    wait_until_all_sent(&db, DRAIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_wakes_the_relay_through_listen_notify() {
    let platform = MockPlatform::start().await;
    let app = spawn_app().await;
    let schedule = app.create_schedule(2, 100).await;
    let seats = app.seat_ids(schedule).await;
    let user = app.create_user(1_000).await;
    // Paid before any relay runs, so the relay's first round has an event to deliver, and its
    // acknowledgement shows that round is over (one loop per destination: with two, the other
    // loop's first round would not show).
    let first = app.held(&user, seats[0]).await;
    assert_eq!(app.pay(&user, first, None).await.status(), 200);
    let mut env = relay_env(&app.db, &platform.url);
    // Poll so rarely that only a notification can explain a prompt delivery.
    env.retain(|(k, _)| k != "RELAY_POLL_INTERVAL_MS");
    env.push(("RELAY_POLL_INTERVAL_MS".into(), "600000".into()));
    env.push(("RELAY_WORKERS".into(), "1".into()));
    let _relay = RelayProcess::start(&env);
    // Pay again only once the relay listens (else the notification could be missed) and has
    // had its first round (else that round, not the notification, could deliver the payment).
    eventually("the relay to LISTEN", DRAIN, || async {
        let listening = "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND query = 'LISTEN outbox_events'";
        (app.db.scalar(listening) > 0).then_some(())
    })
    .await;
    wait_until_all_sent(&app.db, DRAIN).await;
    let second = app.held(&user, seats[1]).await;
    assert_eq!(app.pay(&user, second, None).await.status(), 200);
    let expected = outbox_event_ids(&app.db);
    assert_eq!(expected.len(), 2);
    platform
        .wait_for_all("reservations", &expected, Duration::from_secs(30))
        .await;
}
