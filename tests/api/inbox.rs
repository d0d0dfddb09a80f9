//! The consumer half: a consumer that records each event id in the inbox in the same
//! transaction as its own write applies a message delivered twice once, whether the second
//! delivery is JetStream's redelivery of an unacknowledged message or a racing consumer.
use crate::helpers::TestDb;
use crate::nats::{jetstream_at, NatsNode};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{stream, AckKind};
use diesel::prelude::*;
use futures_util::StreamExt;
use pg_outbox::inbox::{consume_once, Consumed};
use serde_json::{json, Value};
use std::time::Duration;

const CONSUMER: &str = "sales_ledger";

/// The consumer's own effect: a row per sale, with no constraint of its own that would stop a
/// second one, so only the inbox stands between a redelivery and a double count.
fn create_sales_table(db: &TestDb) {
    db.execute("CREATE TABLE sales (reservation_id bigint NOT NULL, amount bigint NOT NULL)");
}

fn record_sale(conn: &mut PgConnection, event: &Value) -> QueryResult<usize> {
    diesel::sql_query("INSERT INTO sales (reservation_id, amount) VALUES ($1, $2)")
        .bind::<diesel::sql_types::BigInt, _>(event["reservation_id"].as_i64().unwrap())
        .bind::<diesel::sql_types::BigInt, _>(event["amount"].as_i64().unwrap())
        .execute(conn)
}

fn consume(conn: &mut PgConnection, payload: &[u8]) -> Consumed<usize> {
    let event: Value = serde_json::from_slice(payload).unwrap();
    let event_id = event["event_id"].as_str().unwrap().parse().unwrap();
    consume_once(conn, CONSUMER, event_id, |conn| record_sale(conn, &event)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_jetstream_delivers_twice_changes_the_consumers_table_once() {
    let node = NatsNode::start();
    let db = TestDb::create();
    create_sales_table(&db);
    let context = jetstream_at(&node.url()).await;
    let events = context
        .create_stream(stream::Config {
            name: "SALES".into(),
            subjects: vec!["sales.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let event_id = uuid::Uuid::new_v4();
    let event = json!({"event_id": event_id, "reservation_id": 7, "amount": 1000});
    context
        .publish("sales.7", serde_json::to_vec(&event).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let consumer = events
        .create_consumer(pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut conn = db.connect();

    // The consumer applies the event, then dies before its ack: the broker delivers it again.
    let first = messages.next().await.unwrap().unwrap();
    assert_eq!(consume(&mut conn, &first.payload), Consumed::Applied(1));
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("the unacknowledged message comes again")
        .unwrap()
        .unwrap();
    assert_eq!(second.info().unwrap().delivered, 2, "a real redelivery");
    assert_eq!(consume(&mut conn, &second.payload), Consumed::Duplicate);
    second.ack_with(AckKind::Ack).await.unwrap();

    assert_eq!(db.scalar("SELECT count(*) FROM sales"), 1);
    assert_eq!(
        db.scalar("SELECT coalesce(sum(amount), 0) FROM sales"),
        1000
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM inbox WHERE consumer = '{CONSUMER}' AND event_id = '{event_id}'"
        )),
        1
    );
}

#[test]
fn consumers_racing_on_one_event_apply_it_once() {
    let db = TestDb::create();
    create_sales_table(&db);
    let event_id = uuid::Uuid::new_v4();
    let payload =
        serde_json::to_vec(&json!({"event_id": event_id, "reservation_id": 3, "amount": 50}))
            .unwrap();
    let barrier = std::sync::Barrier::new(16);
    let outcomes: Vec<Consumed<usize>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let mut conn = db.connect();
                    barrier.wait();
                    consume(&mut conn, &payload)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Consumed::Applied(_)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert_eq!(db.scalar("SELECT count(*) FROM sales"), 1);
}

#[test]
fn an_effect_that_fails_leaves_no_inbox_row_so_the_next_delivery_applies_it() {
    let db = TestDb::create();
    create_sales_table(&db);
    let event_id = uuid::Uuid::new_v4();
    let mut conn = db.connect();
    let failed = consume_once(&mut conn, CONSUMER, event_id, |conn| {
        diesel::sql_query("INSERT INTO sales (reservation_id, amount) VALUES (1, NULL)")
            .execute(conn)
    });
    assert!(failed.is_err(), "the effect's error is the caller's");
    assert_eq!(db.scalar("SELECT count(*) FROM inbox"), 0);
    let payload =
        serde_json::to_vec(&json!({"event_id": event_id, "reservation_id": 1, "amount": 5}))
            .unwrap();
    assert_eq!(consume(&mut conn, &payload), Consumed::Applied(1));
    assert_eq!(db.scalar("SELECT count(*) FROM sales"), 1);
}
