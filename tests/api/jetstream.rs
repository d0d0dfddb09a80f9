//! The JetStream destination against a real `nats-server`: what the stream holds, a node that
//! dies and comes back, and a relay SIGKILLed between publishing and recording it. The cluster
//! and the streams the relay must refuse or cannot publish to: `jetstream_faults.rs`.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, spawn_app_with, TestApp, TestDb};
use crate::nats::{jetstream_at, stored_messages, NatsNode, Stored};
use diesel::prelude::*;
use mock_platform::JetStreamSource;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const DRAIN: Duration = Duration::from_secs(120);
pub(crate) const STREAM: &str = "CONCERT_EVENTS";

/// Relay settings that also publish to `nats_urls`.
pub(crate) fn with_nats(
    mut settings: Vec<(String, String)>,
    nats_urls: &str,
) -> Vec<(String, String)> {
    settings.push(("NATS_URL".into(), nats_urls.into()));
    settings
}

/// Deliveries still owed to the JetStream destination.
pub(crate) fn owed_to_jetstream(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM outbox_deliveries WHERE destination = 'jetstream'")
}

pub(crate) async fn wait_until_jetstream_has_everything(db: &TestDb) {
    eventually("every JetStream delivery acknowledged", DRAIN, || async {
        (owed_to_jetstream(db) == 0).then_some(())
    })
    .await;
}

/// Each outbox event: its id, type, reservation, payload and trace context.
pub(crate) struct Written {
    event_type: String,
    reservation_id: i64,
    payload: Value,
    trace_context: Option<String>,
}

pub(crate) fn written_events(db: &TestDb) -> HashMap<String, Written> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        event_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        event_type: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        aggregate_id: i64,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        trace_context: Option<String>,
    }
    diesel::sql_query(
        "SELECT event_id::text AS event_id, event_type, aggregate_id, payload, trace_context FROM outbox",
    )
    .load::<Row>(&mut db.connect())
    .unwrap()
    .into_iter()
    .map(|r| {
        let written = Written {
            event_type: r.event_type,
            reservation_id: r.aggregate_id,
            payload: r.payload,
            trace_context: r.trace_context,
        };
        (r.event_id, written)
    })
    .collect()
}

/// Asserts the stream holds every written event exactly once (by `Nats-Msg-Id`) and nothing
/// else.
pub(crate) fn assert_stored_once(stored: &[Stored], written: &HashSet<String>) {
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for message in stored {
        *copies.entry(message.msg_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let ids: HashSet<String> = copies.keys().map(|id| id.to_string()).collect();
    assert_eq!(
        ids.len(),
        written.len(),
        "stored {} of {}",
        ids.len(),
        written.len()
    );
    assert_eq!(&ids, written, "the stream holds exactly the events written");
}

/// Holds and pays for each of `seats` as `user`, in turn.
async fn buy(app: &TestApp, user: &crate::helpers::TestUser, seats: &[i64]) -> Vec<i64> {
    let mut reservations = Vec::new();
    for &seat in seats {
        let reservation = app.held(user, seat).await;
        assert_eq!(app.pay(user, reservation, None).await.status(), 200);
        reservations.push(reservation);
    }
    reservations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_in_the_stream_once_in_reservation_order_with_its_payload_and_headers() {
    let node = NatsNode::start();
    let platform = MockPlatform::start_consuming(Some(JetStreamSource {
        servers: vec![node.url()],
        stream: STREAM.into(),
        durable: "platform".into(),
    }))
    .await;
    let settings = with_nats(relay_settings(&platform.url), &node.url());
    let app = spawn_app_with(&in_process_relay(&settings)).await;
    let schedule = app.create_schedule(20, 100).await;
    let user = app.create_user(10_000).await;
    let seats = app.seat_ids(schedule).await;
    let reservations = buy(&app, &user, &seats).await;
    // Five reservations get a second event, which must land after their first.
    for &reservation in &reservations[..5] {
        let url = app.url(&format!("/reservations/{reservation}/cancel"));
        let cancelled = app.client.post(url).bearer_auth(&user.token).send().await;
        assert_eq!(cancelled.unwrap().status(), 200);
    }

    wait_until_jetstream_has_everything(&app.db).await;
    let written = written_events(&app.db);
    assert_eq!(written.len(), 25);
    let context = jetstream_at(&node.url()).await;
    let stored = stored_messages(&context, STREAM).await;
    assert_stored_once(&stored, &written.keys().cloned().collect());
    for message in &stored {
        let event = &written[&message.msg_id];
        assert_eq!(
            message.subject,
            format!(
                "concert.reservations.{}.{}",
                event.reservation_id, event.event_type
            )
        );
        assert_eq!(message.payload, event.payload, "the platform's payload");
        assert!(event.trace_context.is_some());
        assert_eq!(message.traceparent, event.trace_context);
    }
    let sequence_of = |reservation: i64, event_type: &str| {
        stored
            .iter()
            .find(|m| {
                let event = &written[&m.msg_id];
                event.reservation_id == reservation && event.event_type == event_type
            })
            .map(|m| m.sequence)
            .unwrap()
    };
    for &reservation in &reservations[..5] {
        assert!(
            sequence_of(reservation, "reservation.confirmed")
                < sequence_of(reservation, "reservation.cancelled"),
            "reservation {reservation}: cancelled stored before confirmed"
        );
    }

    // The platform consumed the stream: each event once, acknowledged.
    let expected: HashSet<String> = written.keys().cloned().collect();
    platform.wait_for_all("jetstream", &expected, DRAIN).await;
    let (_, report) = admin_get(&app, "/admin/outbox").await;
    let destinations: Vec<&str> = report["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert!(destinations.contains(&"jetstream"), "{report}");
}

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The real `mock-data-platform` binary, consuming the stream at `nats_url`.
struct MockProcess {
    child: std::process::Child,
    url: String,
}

impl MockProcess {
    fn start(nats_url: &str) -> MockProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mock-data-platform"))
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--nats-url",
                nats_url,
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        MockProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn jetstream_event_ids(&self) -> Option<Vec<String>> {
        let received: Value = reqwest::get(format!("{}/received", self.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let events = received["jetstream"]["events"].as_array()?;
        Some(
            events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                .collect(),
        )
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_down_during_500_payments_fails_none_and_they_all_arrive_once_it_is_back() {
    let mut node = NatsNode::start();
    let platform = MockPlatform::start().await;
    let consumer = MockProcess::start(&node.url());
    let settings = with_nats(relay_settings(&platform.url), &node.url());
    let app = Arc::new(spawn_app_with(&in_process_relay(&settings)).await);
    let context = jetstream_at(&node.url()).await;
    eventually("the relay to create the stream", DRAIN, || async {
        context.get_stream(STREAM).await.ok().map(|_| ())
    })
    .await;
    node.sigkill();

    let schedule = app.create_schedule(500, 10).await;
    let seats = app.seat_ids(schedule).await;
    let users = users_with_points(&app, 25, 1_000).await;
    // A payment that waited on the broker would not answer within the 2 s each is given.
    let statuses = pay_in_turns(&app, &users, &seats, 20, Duration::from_secs(2)).await;
    assert_eq!(statuses.len(), 500);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let expected: HashSet<String> = written_events(&app.db).into_keys().collect();
    assert_eq!(expected.len(), 500);
    // A dead broker delays no other destination.
    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    assert_eq!(owed_to_jetstream(&app.db), 500);

    node.restart();
    wait_until_jetstream_has_everything(&app.db).await;
    let stored = stored_messages(&jetstream_at(&node.url()).await, STREAM).await;
    assert_stored_once(&stored, &expected);
    // The platform's consumer came back with the broker and consumed every event once.
    let consumed = eventually("the consumer to get all 500", DRAIN, || async {
        let ids = consumer.jetstream_event_ids().await?;
        (ids.len() >= 500).then_some(ids)
    })
    .await;
    let unique: HashSet<String> = consumed.iter().cloned().collect();
    assert_eq!((consumed.len(), unique), (500, expected));
}

async fn stream_messages(context: &async_nats::jetstream::Context) -> u64 {
    let mut stream = context.get_stream(STREAM).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_sigkilled_after_publishing_four_times_loses_nothing_and_the_stream_stores_each_event_once(
) {
    let node = NatsNode::start();
    let platform = MockPlatform::start().await;
    let db = TestDb::create();
    db.execute("INSERT INTO outbox_destinations (name) VALUES ('jetstream')");
    let env = with_nats(relay_env(&db, &platform.url), &node.url());
    let context = jetstream_at(&node.url()).await;
    let mut expected = HashSet::new();
    for round in 0..4 {
        let batch = write_events_from(&db, 1 + round * 100, 100, 1);
        expected.extend(batch);
        // The relay's acknowledgement updates each event's outbox row: holding these rows'
        // locks lets it publish and then stops it before it can record that it did.
        let mut blocker = db.connect();
        diesel::connection::SimpleConnection::batch_execute(
            &mut blocker,
            "BEGIN; SELECT id FROM outbox WHERE sent_at IS NULL FOR UPDATE",
        )
        .unwrap();
        let relay = RelayProcess::start(&env);
        eventually("this round's events in the stream", DRAIN, || async {
            let mut stream = context.get_stream(STREAM).await.ok()?;
            let messages = stream.info().await.ok()?.state.messages;
            (messages >= expected.len() as u64).then_some(())
        })
        .await;
        relay.sigkill();
        // The dead relay's acknowledgement is still queued behind the lock in its server
        // process, which would finish it once the lock goes: end those processes first, as
        // a machine that died with the relay would.
        diesel::connection::SimpleConnection::batch_execute(
            &mut blocker,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid(); ROLLBACK",
        )
        .unwrap();
    }
    assert_eq!(stream_messages(&context).await, 400);
    assert_eq!(
        owed_to_jetstream(&db),
        400,
        "none was recorded as delivered"
    );

    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = env;
    env.push((
        "RELAY_METRICS_ADDR".into(),
        format!("127.0.0.1:{metrics_port}"),
    ));
    let _relay = RelayProcess::start(&env);
    wait_until_jetstream_has_everything(&db).await;
    assert_stored_once(&stored_messages(&context, STREAM).await, &expected);
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let duplicates = sample(
        &metrics,
        r#"outbox_deliveries_total{destination="jetstream",outcome="duplicate"}"#,
    );
    assert!(
        duplicates >= 400.0,
        "every event was sent again and answered duplicate: {duplicates}"
    );
}
