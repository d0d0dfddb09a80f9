//! The outbox table at scale: the claim stays an index scan next to a million sent rows, and
//! retention removes sent rows while keeping dead and pending ones.
use crate::delivery_helpers::write_events;
use crate::helpers::TestDb;
use concert_outbox::outbox::relay::store::{self, CLAIM_DUE_DELIVERIES};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text, Uuid as SqlUuid};
use std::time::Duration;

fn explain_claim(db: &TestDb) -> String {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    diesel::sql_query(format!("EXPLAIN {CLAIM_DUE_DELIVERIES}"))
        .bind::<Text, _>("data_platform")
        .bind::<BigInt, _>(100)
        .bind::<Text, _>("test")
        .bind::<SqlUuid, _>(uuid::Uuid::new_v4())
        .bind::<Double, _>(30.0)
        .load::<Line>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Inserts `events` events delivered to every destination a day ago, in bulk: the per-row
/// fan-out trigger and foreign-key checks are switched off for the insert only.
fn insert_sent_events(db: &TestDb, events: i64) {
    db.execute("ALTER TABLE outbox DISABLE TRIGGER outbox_fan_out");
    db.execute(&format!(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, created_at, sent_at) \
         SELECT gen_random_uuid(), 'reservation', g, 'reservation.confirmed', '{{}}'::jsonb, \
                now() - interval '1 day', now() - interval '1 day' \
         FROM generate_series(1, {events}) AS g"
    ));
    db.execute("ALTER TABLE outbox ENABLE TRIGGER outbox_fan_out");
    db.execute("ALTER TABLE outbox_deliveries DISABLE TRIGGER ALL");
    db.execute(
        "INSERT INTO outbox_deliveries (outbox_id, destination, aggregate_type, aggregate_id, status, attempts, sent_at) \
         SELECT id, d.name, aggregate_type, aggregate_id, 'sent', 1, sent_at \
         FROM outbox, outbox_destinations d WHERE outbox.sent_at IS NOT NULL",
    );
    db.execute("ALTER TABLE outbox_deliveries ENABLE TRIGGER ALL");
    db.execute("ANALYZE outbox_deliveries");
    db.execute("ANALYZE outbox");
}

#[tokio::test]
async fn the_claim_stays_an_index_scan_beside_a_million_sent_deliveries() {
    let db = TestDb::create();
    insert_sent_events(&db, 500_000);
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE status = 'sent'"),
        1_000_000
    );
    let pending = write_events(&db, 10, 1);

    let plan = explain_claim(&db);
    assert!(
        plan.contains("outbox_deliveries_due"),
        "the claim should walk the pending-only index:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan on outbox_deliveries"), "{plan}");
    let claim = store::claim_due_deliveries(
        &mut db.connect(),
        "data_platform",
        "test",
        100,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(claim.deliveries.len(), pending.len());
}

#[tokio::test]
async fn retention_deletes_old_sent_events_and_keeps_dead_and_pending_ones() {
    let db = TestDb::create();
    insert_sent_events(&db, 20_000);
    write_events(&db, 10, 1);
    db.execute(
        "UPDATE outbox_deliveries SET status = 'dead', last_error = 'HTTP 422' \
         WHERE destination = 'data_platform' AND outbox_id = (SELECT max(id) FROM outbox)",
    );
    let deleted = store::delete_sent_events(&mut db.connect(), Duration::from_secs(3600)).unwrap();
    assert_eq!(deleted, 20_000);
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox"),
        10,
        "pending and dead events are kept"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE status = 'dead'"),
        1
    );
}

#[tokio::test]
async fn retention_keeps_recently_sent_events() {
    let db = TestDb::create();
    write_events(&db, 3, 1);
    db.execute("UPDATE outbox_deliveries SET status = 'sent', sent_at = now()");
    db.execute("UPDATE outbox SET sent_at = now()");
    assert_eq!(
        store::delete_sent_events(&mut db.connect(), Duration::from_secs(3600)).unwrap(),
        0
    );
    assert_eq!(db.scalar("SELECT count(*) FROM outbox"), 3);
}

#[tokio::test]
async fn a_lost_sent_stamp_is_repaired() {
    let db = TestDb::create();
    write_events(&db, 2, 1);
    // A relay killed between acknowledging the last destination and stamping the event.
    db.execute("UPDATE outbox_deliveries SET status = 'sent', sent_at = now()");
    assert_eq!(store::repair_sent_stamps(&mut db.connect()).unwrap(), 2);
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        0
    );
}

#[tokio::test]
async fn the_hot_statements_are_prepared_once_per_connection_and_reused() {
    let db = TestDb::create();
    write_events(&db, 3, 1);
    let mut conn = db.connect();
    for _ in 0..3 {
        store::claim_due_deliveries(
            &mut conn,
            "data_platform",
            "test",
            1,
            Duration::from_secs(30),
        )
        .unwrap();
    }
    #[derive(QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let prepared = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE 'WITH due AS%'",
    )
    .get_result::<Prepared>(&mut conn)
    .unwrap();
    assert_eq!(prepared.n, 1, "three claims, one prepared statement");
}
