//! The JetStream destination where the broker or its stream is not what the relay hoped for: a
//! three-node cluster that loses its stream leader, a stream whose duplicate window is too
//! short, and a subject the stream does not cover.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, spawn_app_with, TestDb};
use crate::jetstream::{
    assert_stored_once, owed_to_jetstream, wait_until_jetstream_has_everything, with_nats,
    written_events, DRAIN, STREAM,
};
use crate::nats::{jetstream_at, stored_messages, NatsCluster, NatsNode};
use async_nats::jetstream::stream;
use pg_outbox::{enqueue_event, NewEvent};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_that_loses_its_stream_leader_during_2000_payments_stores_every_event_once(
) {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut cluster = NatsCluster::start();
    let platform = MockPlatform::start().await;
    let mut settings = with_nats(relay_settings(&platform.url), &cluster.urls());
    settings.push(("NATS_STREAM_REPLICAS".into(), "3".into()));
    let app = Arc::new(spawn_app_with(&in_process_relay(&settings)).await);
    eventually("the stream to have a leader", DRAIN, || async {
        cluster.stream_leader(STREAM).await
    })
    .await;
    let schedule_seats = 1000;
    let mut seats = Vec::new();
    for _ in 0..2 {
        let schedule = app.create_schedule(schedule_seats, 10).await;
        seats.extend(app.seat_ids(schedule).await);
    }
    assert_eq!(seats.len(), 2000);
    let users = users_with_points(&app, 20, 100_000).await;
    let buyers = pay_in_turns(&app, &users, &seats, 100, Duration::from_secs(5));
    let buyers = tokio::spawn(buyers);

    let paid = |n: i64| {
        let app = app.clone();
        move || {
            let app = app.clone();
            async move { (app.db.scalar("SELECT count(*) FROM payments") >= n).then_some(()) }
        }
    };
    eventually("500 payments", DRAIN, paid(500)).await;
    let leader = cluster.stream_leader(STREAM).await.unwrap();
    cluster.node_mut(&leader).sigkill();
    eventually("a new stream leader", DRAIN, || async {
        cluster
            .stream_leader(STREAM)
            .await
            .filter(|new| *new != leader)
    })
    .await;
    eventually("1200 payments", DRAIN, paid(1200)).await;
    cluster.node_mut(&leader).restart();

    let statuses = buyers.await.unwrap();
    assert_eq!(statuses.len(), 2000);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "payments are unaffected: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    wait_until_jetstream_has_everything(&app.db).await;
    let expected: HashSet<String> = written_events(&app.db).into_keys().collect();
    assert_eq!(expected.len(), 2000);
    let context = jetstream_at(&cluster.urls()).await;
    assert_stored_once(&stored_messages(&context, STREAM).await, &expected);
}

/// Runs `outbox-relay` to its end (it must not keep running) and returns (success, stderr).
fn run_relay_to_exit(env: &[(String, String)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_whose_duplicate_window_is_too_short_is_refused_at_start_with_one_line() {
    let node = NatsNode::start();
    let db = TestDb::create();
    // The default lease and backoff: an event may be sent again up to 120 s after it was sent.
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.as_str()),
        ("DATA_PLATFORM_URL", "http://127.0.0.1:9"),
        ("NATS_URL", &node.url()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // Asked to create one: refused before it exists.
    let mut short = env.clone();
    short.push(("NATS_DUPLICATE_WINDOW".into(), "10s".into()));
    let (ok, stderr) = run_relay_to_exit(&short);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(STREAM) && stderr.contains("duplicate"),
        "{stderr}"
    );
    let context = jetstream_at(&node.url()).await;
    assert!(context.get_stream(STREAM).await.is_err(), "nothing created");

    // Finding one: refused too.
    context
        .create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec!["concert.reservations.>".into()],
            duplicate_window: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    let (ok, stderr) = run_relay_to_exit(&env);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("30s") && stderr.contains(STREAM),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_on_a_subject_the_stream_does_not_cover_parks_dead_and_holds_back_no_other() {
    let node = NatsNode::start();
    let platform = MockPlatform::start().await;
    let db = TestDb::create();
    db.execute("INSERT INTO outbox_destinations (name) VALUES ('jetstream')");
    let context = jetstream_at(&node.url()).await;
    context
        .create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec!["concert.reservations.*.reservation.confirmed".into()],
            duplicate_window: Duration::from_secs(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let covered = write_events_from(&db, 1, 3, 1);
    let uncovered = uuid::Uuid::new_v4();
    enqueue_event(
        &mut db.connect(),
        &NewEvent {
            event_id: uncovered,
            aggregate_type: "reservation",
            aggregate_id: 99,
            event_type: "reservation.refunded",
            payload: json!({"event_id": uncovered, "reservation_id": 99}),
            trace_context: None,
        },
    )
    .unwrap();
    let mut env = with_nats(relay_env(&db, &platform.url), &node.url());
    env.push(("RELAY_MAX_ATTEMPTS".into(), "3".into()));
    let _relay = RelayProcess::start(&env);

    eventually("the uncovered event to go dead", DRAIN, || async {
        let dead = db.scalar(
            "SELECT count(*) FROM outbox_deliveries \
             WHERE destination = 'jetstream' AND status = 'dead' AND attempts = 3",
        );
        (dead == 1).then_some(())
    })
    .await;
    eventually("the covered events acknowledged", DRAIN, || async {
        (owed_to_jetstream(&db) == 1).then_some(())
    })
    .await;
    assert_stored_once(&stored_messages(&context, STREAM).await, &covered);
    let error = db.text("SELECT last_error FROM outbox_deliveries WHERE destination = 'jetstream'");
    assert!(error.contains("does not cover"), "{error}");
}
