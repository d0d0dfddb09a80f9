//! The reservation rules live in SQL functions (migration `reservation_rules`) that PostgreSQL
//! inlines: the Rust enum and the SQL side spell the same states, each rule answers as the
//! domain says, and the hot statements plan as if the rules were written out (the partial
//! unique index still arbitrates the hold's `ON CONFLICT`).
use crate::helpers::TestDb;
use concert_outbox::domain::ReservationStatus;
use concert_outbox::reservations::HOLD_SEAT;
use diesel::prelude::*;
use diesel::sql_types::Text;
use pg_outbox::relay::store::CLAIM_DUE_DELIVERIES;
use std::collections::BTreeSet;

const PAY_HELD_RESERVATION: &str = include_str!("../../src/payments/pay_held_reservation.sql");

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(db: &TestDb, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Line>(&mut db.connect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|l| l.line)
        .collect()
}

#[test]
fn the_status_check_allows_exactly_the_enums_states() {
    let db = TestDb::create();
    let check = db.text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conname = 'reservations_status_check'",
    );
    let allowed: BTreeSet<&str> = check.split('\'').skip(1).step_by(2).collect();
    let spelled: BTreeSet<&str> = ReservationStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(allowed, spelled, "{check}");
}

#[test]
fn each_rule_answers_for_every_state_as_the_domain_says() {
    use ReservationStatus::*;
    let db = TestDb::create();
    for status in ReservationStatus::ALL {
        for (hold_ends, within_hold) in [("now() + interval '1 minute'", true), ("now()", false)] {
            let rule = |rule: &str| db.text(&format!("{rule}('{status}', {hold_ends}, now())"));
            let held = status == Held;
            let case = format!("{status}, within hold: {within_hold}");
            assert_eq!(
                db.text(&format!("reservation_is_live('{status}')")) == "true",
                matches!(status, Held | Confirmed),
                "{case}"
            );
            assert_eq!(
                rule("reservation_hold_active") == "true",
                held && within_hold,
                "{case}"
            );
            assert_eq!(
                rule("reservation_hold_lapsed") == "true",
                held && !within_hold,
                "{case}"
            );
            assert_eq!(
                rule("reservation_takes_seat") == "true",
                status == Confirmed || (held && within_hold),
                "{case}"
            );
            let seen: ReservationStatus = rule("reservation_status_at").parse().unwrap();
            assert_eq!(
                seen,
                if held && !within_hold {
                    Expired
                } else {
                    status
                },
                "{case}"
            );
            let seat = match status {
                Confirmed => "sold",
                Held if within_hold => "held",
                _ => "available",
            };
            assert_eq!(rule("seat_state_at"), seat, "{case}");
        }
    }
    assert_eq!(db.text("seat_state_at(NULL, NULL, now())"), "available");
}

/// The plan of `sql` (generic, as the statement cache runs it after a few executions) with
/// its placeholders typed as given.
fn generic_plan(db: &TestDb, types: &str, sql: &str, args: &str) -> String {
    let mut conn = db.connect();
    diesel::sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("PREPARE statement ({types}) AS {sql}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("EXPLAIN (COSTS OFF) EXECUTE statement ({args})"))
        .load::<PlanLine>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// No rule function is left in a plan: each was inlined into its expression.
fn assert_inlined(plan: &str) {
    assert!(
        !plan.contains("reservation_") && !plan.contains("seat_state_at"),
        "{plan}"
    );
}

#[test]
fn the_hot_statements_plan_as_if_the_rules_were_written_out() {
    let db = TestDb::create();
    let hold = generic_plan(
        &db,
        "bigint, bigint, float8, text, text",
        HOLD_SEAT,
        "1, 1, 300, 'expired', 'held'",
    );
    assert_inlined(&hold);
    assert!(
        hold.contains("Conflict Arbiter Indexes: reservations_one_live_per_seat"),
        "{hold}"
    );
    assert!(
        hold.contains("Index Scan using reservations_one_live_per_seat"),
        "{hold}"
    );
    assert!(
        hold.contains("Filter: ((status = 'held'::text) AND (held_until <= now()))"),
        "{hold}"
    );
    let pay = generic_plan(
        &db,
        "bigint, bigint, text, uuid, text, text, text, text",
        PAY_HELD_RESERVATION,
        "1, 1, NULL, gen_random_uuid(), 'reservation', 'reservation.confirmed', NULL, 'confirmed'",
    );
    assert_inlined(&pay);
    assert!(
        pay.contains("Index Scan using reservations_pkey on reservations r"),
        "{pay}"
    );
    assert!(
        pay.contains("(status = 'held'::text) AND (held_until > now())"),
        "{pay}"
    );
    let claim = generic_plan(
        &db,
        "text, bigint, text, uuid, float8",
        CLAIM_DUE_DELIVERIES,
        "'data_platform', 100, 'test', gen_random_uuid(), 30",
    );
    assert!(claim.contains("LockRows"), "{claim}");
    let index = lines(
        &db,
        "SELECT pg_get_indexdef('reservations_one_live_per_seat'::regclass) AS line",
    );
    assert!(
        index[0].contains("UNIQUE") && index[0].contains("reservation_is_live(status)"),
        "{index:?}"
    );
}

/// The cancelled event comes from the same SQL builder as the paid one: the exact object
/// `ReservationEvent` serialises, occurring at the refund and paid at the payment.
#[tokio::test]
async fn the_cancelled_event_is_exactly_what_reservation_event_serialises() {
    use concert_outbox::outbox::events::{ReservationEvent, RESERVATION_CANCELLED};
    use diesel::sql_types::{BigInt, Integer, Jsonb, Timestamptz, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Cancelled {
        #[diesel(sql_type = SqlUuid)]
        event_id: uuid::Uuid,
        #[diesel(sql_type = Jsonb)]
        payload: serde_json::Value,
        #[diesel(sql_type = Timestamptz)]
        paid_at: chrono::DateTime<chrono::Utc>,
        #[diesel(sql_type = Timestamptz)]
        refunded_at: chrono::DateTime<chrono::Utc>,
        #[diesel(sql_type = Integer)]
        seat_no: i32,
        #[diesel(sql_type = BigInt)]
        concert_id: i64,
    }
    let app = crate::helpers::spawn_app().await;
    let schedule = app.create_schedule(3, 250).await;
    let seat = app.seat_ids(schedule).await[2];
    let user = app.create_user(1000).await;
    let reservation = app.held(&user, seat).await;
    assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
    let cancelled = app
        .client
        .post(app.url(&format!("/reservations/{reservation}/cancel")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    let row: Cancelled = diesel::sql_query(
        "SELECT o.event_id, o.payload, p.paid_at, p.refunded_at, s.seat_no, sc.concert_id \
         FROM outbox o JOIN payments p ON p.reservation_id = o.aggregate_id \
         JOIN reservations r ON r.id = p.reservation_id JOIN seats s ON s.id = r.seat_id \
         JOIN schedules sc ON sc.id = s.schedule_id \
         WHERE o.event_type = 'reservation.cancelled'",
    )
    .get_result(&mut app.db.connect())
    .unwrap();
    let expected = ReservationEvent {
        event_id: row.event_id,
        event_type: RESERVATION_CANCELLED,
        occurred_at: row.refunded_at,
        reservation_id: reservation,
        user_id: user.id,
        seat_id: seat,
        seat_no: row.seat_no,
        schedule_id: schedule,
        concert_id: row.concert_id,
        amount: 250,
        paid_at: row.paid_at,
    };
    assert_eq!(row.payload, serde_json::to_value(&expected).unwrap());
    assert_eq!(
        row.payload.to_string(),
        serde_json::to_value(&expected).unwrap().to_string()
    );
}
