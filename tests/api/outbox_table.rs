//! The outbox table at scale: the claim and the acknowledgement stay index scans next to a
//! million sent events, retention removes sent events while keeping dead and pending ones, and
//! an event is stamped sent exactly when its last delivery is acknowledged.
use crate::delivery_helpers::write_events;
use crate::helpers::{eventually, TestDb};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Text, Uuid as SqlUuid};
use pg_outbox::relay::store::{self, ACKNOWLEDGE, CLAIM_DUE_DELIVERIES};
use std::time::Duration;

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

fn plan_of(lines: Vec<PlanLine>) -> String {
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `plan` reads the whole `outbox` table (`outbox_deliveries` holds only what is still
/// owed, so scanning it is the planner's right choice while it is small).
fn scans_the_outbox(plan: &str) -> bool {
    plan.lines()
        .any(|line| line.contains("Seq Scan on outbox ") || line.contains("Seq Scan on outbox o "))
}

fn explain_claim(db: &TestDb) -> String {
    plan_of(
        diesel::sql_query(format!("EXPLAIN {CLAIM_DUE_DELIVERIES}"))
            .bind::<Text, _>("data_platform")
            .bind::<BigInt, _>(100)
            .bind::<Text, _>("test")
            .bind::<SqlUuid, _>(uuid::Uuid::new_v4())
            .bind::<Double, _>(30.0)
            .load(&mut db.connect())
            .unwrap(),
    )
}

fn explain_acknowledge(db: &TestDb, outbox_ids: &[i64]) -> String {
    plan_of(
        diesel::sql_query(format!("EXPLAIN {ACKNOWLEDGE}"))
            .bind::<Text, _>("data_platform")
            .bind::<Array<BigInt>, _>(outbox_ids)
            .bind::<SqlUuid, _>(uuid::Uuid::new_v4())
            .load(&mut db.connect())
            .unwrap(),
    )
}

/// Inserts `events` events delivered to every destination a day ago, in bulk: acknowledged
/// deliveries are deleted, so a sent event is an `outbox` row with `sent_at` and no delivery
/// rows. The outbox's triggers are switched off for the insert only.
fn insert_sent_events(db: &TestDb, events: i64) {
    db.execute("ALTER TABLE outbox DISABLE TRIGGER USER");
    db.execute(&format!(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, created_at, sent_at) \
         SELECT gen_random_uuid(), 'reservation', g, 'reservation.confirmed', '{{}}'::jsonb, \
                now() - interval '1 day', now() - interval '1 day' \
         FROM generate_series(1, {events}) AS g"
    ));
    db.execute("ALTER TABLE outbox ENABLE TRIGGER USER");
    db.execute("ANALYZE outbox");
}

#[tokio::test]
async fn claim_and_acknowledgement_stay_index_scans_beside_a_million_sent_events() {
    let db = TestDb::create();
    insert_sent_events(&db, 1_000_000);
    let pending = write_events(&db, 10, 1);
    db.execute("ANALYZE outbox_deliveries");

    let plan = explain_claim(&db);
    assert!(
        plan.contains("Index Scan using outbox_pkey on outbox"),
        "the claim should read events by primary key:\n{plan}"
    );
    assert!(!scans_the_outbox(&plan), "{plan}");
    let claim = store::claim_due_deliveries(
        &mut db.connect(),
        "data_platform",
        "test",
        100,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(claim.deliveries.len(), pending.len());

    let ids: Vec<i64> = claim.deliveries.iter().map(|d| d.outbox_id).collect();
    let plan = explain_acknowledge(&db, &ids);
    assert!(!scans_the_outbox(&plan), "{plan}");
    assert_eq!(
        store::acknowledge(&mut db.connect(), &claim, &ids)
            .unwrap()
            .len(),
        pending.len()
    );
}

/// Whether the claim's "earlier event owed" check compares each candidate with every owed
/// delivery instead of looking its aggregate up.
fn rescans_every_owed_delivery(plan: &str) -> bool {
    plan.lines()
        .any(|line| line.contains("Join Filter:") && line.contains("aggregate_id"))
}

#[tokio::test]
async fn statistics_taken_while_nothing_was_owed_are_refreshed_before_they_slow_the_claim() {
    let db = TestDb::create();
    // What autovacuum does to a healthy outbox: it analyzes the deliveries table while none is
    // owed, after many were (acknowledged deliveries are deleted).
    write_events(&db, 5_000, 1);
    db.execute("DELETE FROM outbox_deliveries");
    db.execute("ANALYZE outbox_deliveries");
    let mut conn = db.connect();
    assert!(
        !store::refresh_stale_statistics(&mut conn).unwrap(),
        "nothing owed yet"
    );

    write_events(&db, 5_000, 1);
    let plan = explain_claim(&db);
    assert!(!rescans_every_owed_delivery(&plan), "{plan}");
    // The burst reaches the statistics collector within a second or so.
    eventually(
        "the stale statistics to be refreshed",
        Duration::from_secs(30),
        || {
            let refreshed = store::refresh_stale_statistics(&mut conn).unwrap();
            async move { refreshed.then_some(()) }
        },
    )
    .await;
    assert!(
        db.scalar("SELECT reltuples::bigint FROM pg_class WHERE relname = 'outbox_deliveries'")
            >= 5_000
    );
    let plan = explain_claim(&db);
    assert!(
        plan.contains("outbox_deliveries_by_aggregate"),
        "each candidate looks its aggregate up by index:\n{plan}"
    );
    assert!(
        !store::refresh_stale_statistics(&mut conn).unwrap(),
        "fresh now"
    );
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
    db.execute("DELETE FROM outbox_deliveries");
    db.execute("UPDATE outbox SET sent_at = now(), pending_deliveries = 0");
    assert_eq!(
        store::delete_sent_events(&mut db.connect(), Duration::from_secs(3600)).unwrap(),
        0
    );
    assert_eq!(db.scalar("SELECT count(*) FROM outbox"), 3);
}

/// Both destinations acknowledge one event at the same moment. The second acknowledgement
/// waits on the event's row until the first commits, then sees its decrement, so the event is
/// stamped sent once both are in: the stamp is never lost between two acknowledgements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_of_two_simultaneous_acknowledgements_stamps_the_event() {
    let db = TestDb::create();
    write_events(&db, 1, 1);
    let claim = |destination: &str| {
        store::claim_due_deliveries(
            &mut db.connect(),
            destination,
            "test",
            10,
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let (data_platform, notification) = (claim("data_platform"), claim("notification"));
    let id = data_platform.deliveries[0].outbox_id;

    let mut first = db.connect();
    diesel::sql_query("BEGIN").execute(&mut first).unwrap();
    assert_eq!(
        store::acknowledge(&mut first, &data_platform, &[id]).unwrap(),
        vec![id]
    );
    let second = {
        let mut conn = db.connect();
        std::thread::spawn(move || store::acknowledge(&mut conn, &notification, &[id]).unwrap())
    };
    eventually(
        "the second acknowledgement waits on the event's row",
        Duration::from_secs(10),
        || async {
            let waiting = db.scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            );
            (waiting == 1).then_some(())
        },
    )
    .await;
    diesel::sql_query("COMMIT").execute(&mut first).unwrap();
    assert_eq!(second.join().unwrap(), vec![id]);

    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL AND pending_deliveries = 0"
        ),
        1
    );
    assert_eq!(db.scalar("SELECT count(*) FROM outbox_deliveries"), 0);
}

/// A destination registered between the two triggers of one insert (the count is taken
/// before the row is written, the deliveries after): the fan-out corrects the count. Simulated
/// by skipping the count for one insert.
#[tokio::test]
async fn the_fan_out_corrects_a_count_taken_before_a_destination_was_registered() {
    let db = TestDb::create();
    db.execute("ALTER TABLE outbox DISABLE TRIGGER outbox_expect_deliveries");
    write_events(&db, 1, 1);
    db.execute("ALTER TABLE outbox ENABLE TRIGGER outbox_expect_deliveries");
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE pending_deliveries = 2 AND sent_at IS NULL"),
        1
    );
}

/// The count of deliveries owed is set as the event is written, from the destinations
/// registered then; with none registered, the event is sent as soon as it exists.
#[tokio::test]
async fn an_event_owes_one_delivery_per_registered_destination() {
    let db = TestDb::create();
    write_events(&db, 1, 1);
    assert_eq!(
        db.scalar("SELECT pending_deliveries::bigint FROM outbox"),
        2
    );
    db.execute("DELETE FROM outbox");
    db.execute("DELETE FROM outbox_destinations");
    write_events(&db, 1, 1);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM outbox WHERE pending_deliveries = 0 AND sent_at IS NOT NULL"
        ),
        1
    );
}

#[tokio::test]
async fn a_destination_gets_deliveries_only_for_the_event_types_it_takes() {
    let db = TestDb::create();
    db.execute("DELETE FROM outbox_destinations");
    let only = |name: &str, types: Option<&[&str]>| store::Registration {
        name: name.into(),
        event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
    };
    let registered = store::register_destinations(
        &mut db.connect(),
        &[
            only("platform", Some(&["reservation.confirmed"])),
            only(
                "payment_svc",
                Some(&["payment.requested", "payment.refund_requested"]),
            ),
            only("audit", None),
        ],
    )
    .unwrap();
    assert_eq!(registered, 3);
    let mut conn = db.connect();
    for event_type in ["reservation.confirmed", "payment.requested", "seat.noticed"] {
        let event_id = uuid::Uuid::new_v4();
        pg_outbox::enqueue_event(
            &mut conn,
            &pg_outbox::NewEvent {
                event_id,
                aggregate_type: "reservation",
                aggregate_id: 1,
                event_type,
                payload: serde_json::json!({"event_id": event_id}),
                trace_context: None,
            },
        )
        .unwrap();
    }
    let owed = |event_type: &str| {
        db.text(&format!(
            "SELECT string_agg(d.destination, ',' ORDER BY d.destination) || ' / ' || max(o.pending_deliveries) \
             FROM outbox o JOIN outbox_deliveries d ON d.outbox_id = o.id WHERE o.event_type = '{event_type}'"
        ))
    };
    assert_eq!(owed("reservation.confirmed"), "audit,platform / 2");
    assert_eq!(owed("payment.requested"), "audit,payment_svc / 2");
    assert_eq!(owed("seat.noticed"), "audit / 1");

    // Registering again replaces what a destination takes.
    store::register_destinations(&mut conn, &[only("audit", Some(&["payment.requested"]))])
        .unwrap();
    assert_eq!(
        db.text("SELECT array_to_string(event_types, ',') FROM outbox_destinations WHERE name = 'audit'"),
        "payment.requested"
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
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%WITH due AS (%'",
    )
    .get_result::<Prepared>(&mut conn)
    .unwrap();
    assert_eq!(prepared.n, 1, "three claims, one prepared statement");
}

/// The relay's connections do not wait for the WAL flush (a lost lease or acknowledgement only
/// means a redelivery); the service's connections, which commit payments, always do.
#[tokio::test]
async fn only_relay_connections_commit_asynchronously() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        synchronous_commit: String,
    }
    let db = TestDb::create();
    let setting = |pool: concert_outbox::db::DbPool| {
        diesel::sql_query("SHOW synchronous_commit")
            .get_result::<Setting>(&mut pool.get().unwrap())
            .unwrap()
            .synchronous_commit
    };
    assert_eq!(
        setting(pg_outbox::db::build_relay_pool(&db.url, 1).unwrap()),
        "off"
    );
    assert_eq!(
        setting(concert_outbox::db::build_pool(&db.url, 1).unwrap()),
        "on"
    );
}
