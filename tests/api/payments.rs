use crate::helpers::{error_code, join_all, spawn_app};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test]
async fn paying_confirms_debits_and_writes_exactly_the_contracted_outbox_event() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(5, 300).await;
    let seat = app.seat_ids(schedule).await[2];
    let user = app.create_user(1000).await;
    let reservation = app.held(&user, seat).await;

    let response = app.pay(&user, reservation, None).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["reservation_id"], reservation);
    assert_eq!(receipt["amount"], 300);
    assert_eq!(receipt["balance"], 700);
    assert_eq!(receipt["status"], "confirmed");
    assert!(receipt["payment_id"].as_i64().is_some());

    let (_, shown) = app
        .get_json(&user, &format!("/reservations/{reservation}"))
        .await;
    assert_eq!(shown["status"], "confirmed");
    let (_, points) = app.get_json(&user, "/points").await;
    assert_eq!(points["balance"], 700);
    let (_, seats) = app
        .get_json(&user, &format!("/schedules/{schedule}/seats"))
        .await;
    assert_eq!(seats[2]["status"], "sold");
    assert_eq!(app.db.scalar("SELECT sum(delta) FROM point_ledger"), 700);

    let payload = outbox_payloads(&app.db).remove(0);
    let mut fields: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "amount",
            "concert_id",
            "event_id",
            "event_type",
            "occurred_at",
            "paid_at",
            "reservation_id",
            "schedule_id",
            "seat_id",
            "seat_no",
            "user_id"
        ]
    );
    assert_eq!(payload["event_type"], "reservation.confirmed");
    assert_eq!(payload["reservation_id"], reservation);
    assert_eq!(payload["user_id"], user.id);
    assert_eq!(payload["seat_id"], seat);
    assert_eq!(payload["seat_no"], 3);
    assert_eq!(payload["schedule_id"], schedule);
    assert_eq!(payload["amount"], 300);
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM outbox WHERE event_id = '{}' AND aggregate_id = {reservation} \
             AND aggregate_type = 'reservation' AND sent_at IS NULL",
            payload["event_id"].as_str().unwrap()
        )),
        1
    );
}

/// The payment statement builds its event with `reservation_event_payload`, the one builder
/// (the cancellation calls it too); `ReservationEvent` is the payload's typed schema. This
/// rebuilds the paid event with `ReservationEvent` from the rows the payment wrote (the outbox
/// row's own `event_id` included) and compares.
#[tokio::test]
async fn the_paid_event_is_exactly_what_reservation_event_serialises() {
    use concert_outbox::outbox::events::{ReservationEvent, RESERVATION_CONFIRMED};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Integer, Timestamptz};
    #[derive(QueryableByName)]
    struct Paid {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        event_id: uuid::Uuid,
        #[diesel(sql_type = Timestamptz)]
        paid_at: chrono::DateTime<chrono::Utc>,
        #[diesel(sql_type = Integer)]
        seat_no: i32,
        #[diesel(sql_type = BigInt)]
        concert_id: i64,
    }
    let app = spawn_app().await;
    let schedule = app.create_schedule(5, 300).await;
    let seat = app.seat_ids(schedule).await[4];
    let user = app.create_user(1000).await;
    let reservation = app.held(&user, seat).await;
    assert_eq!(app.pay(&user, reservation, None).await.status(), 200);

    let paid: Paid = diesel::sql_query(
        "SELECT o.event_id, p.paid_at, s.seat_no, sc.concert_id FROM payments p \
         JOIN reservations r ON r.id = p.reservation_id JOIN seats s ON s.id = r.seat_id \
         JOIN schedules sc ON sc.id = s.schedule_id JOIN outbox o ON o.aggregate_id = r.id",
    )
    .get_result(&mut app.db.connect())
    .unwrap();
    let payload = outbox_payloads(&app.db).remove(0);
    let expected = ReservationEvent {
        event_id: paid.event_id,
        event_type: RESERVATION_CONFIRMED,
        occurred_at: paid.paid_at,
        reservation_id: reservation,
        user_id: user.id,
        seat_id: seat,
        seat_no: paid.seat_no,
        schedule_id: schedule,
        concert_id: paid.concert_id,
        amount: 300,
        paid_at: paid.paid_at,
    };
    assert_eq!(payload, serde_json::to_value(&expected).unwrap());
}

fn outbox_payloads(db: &crate::helpers::TestDb) -> Vec<Value> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    diesel::sql_query("SELECT payload FROM outbox ORDER BY id")
        .load::<Row>(&mut db.connect())
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_payments_of_one_reservation_pay_once() {
    let app = Arc::new(spawn_app().await);
    let schedule = app.create_schedule(1, 100).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = Arc::new(app.create_user(10_000).await);
    let reservation = app.held(&user, seat).await;

    let statuses = join_all((0..50).map(|_| {
        let (app, user) = (app.clone(), user.clone());
        async move { app.pay(&user, reservation, None).await.status().as_u16() }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 1);
    assert_eq!(app.db.scalar("SELECT count(*) FROM outbox"), 1);
    assert_eq!(app.db.scalar("SELECT balance FROM users"), 9_900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_with_ten_holds_and_points_for_three_gets_exactly_three() {
    let app = Arc::new(spawn_app().await);
    let schedule = app.create_schedule(10, 100).await;
    let user = Arc::new(app.create_user(300).await);
    let mut reservations = Vec::new();
    for seat in app.seat_ids(schedule).await {
        reservations.push(app.held(&user, seat).await);
    }

    let responses = join_all(reservations.into_iter().map(|reservation| {
        let (app, user) = (app.clone(), user.clone());
        async move {
            let response = app.pay(&user, reservation, None).await;
            let status = response.status().as_u16();
            (
                status,
                if status == 200 {
                    String::new()
                } else {
                    error_code(response).await
                },
            )
        }
    }))
    .await;
    assert_eq!(
        responses.iter().filter(|(s, _)| *s == 200).count(),
        3,
        "{responses:?}"
    );
    assert!(responses
        .iter()
        .filter(|(s, _)| *s != 200)
        .all(|(s, code)| *s == 409 && code == "insufficient_points"));
    assert_eq!(app.db.scalar("SELECT balance FROM users"), 0);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM reservations WHERE status = 'confirmed'"),
        3
    );
    assert_eq!(app.db.scalar("SELECT count(*) FROM outbox"), 3);
    assert_eq!(app.db.scalar("SELECT sum(delta) FROM point_ledger"), 0);
}

#[tokio::test]
async fn a_failure_in_the_middle_of_the_payment_rolls_everything_back() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(1, 100).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = app.create_user(500).await;
    let reservation = app.held(&user, seat).await;
    // The outbox insert is the payment's last write: make it fail, after the debit, the
    // confirmation, the payment and the ledger row were written in the same transaction.
    app.db.execute(
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
    );
    app.db.execute("CREATE TRIGGER refuse_event BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_event()");

    let response = app.pay(&user, reservation, None).await;
    assert_eq!(response.status(), 500);
    assert_eq!(error_code(response).await, "internal_error");
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 0);
    assert_eq!(app.db.scalar("SELECT count(*) FROM outbox"), 0);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM point_ledger WHERE reason = 'payment'"),
        0
    );
    assert_eq!(app.db.scalar("SELECT balance FROM users"), 500);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM reservations WHERE status = 'held'"),
        1
    );

    app.db.execute("DROP TRIGGER refuse_event ON outbox");
    assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_returns_the_same_receipt_without_paying_twice() {
    let app = Arc::new(spawn_app().await);
    let schedule = app.create_schedule(2, 100).await;
    let seats = app.seat_ids(schedule).await;
    let user = Arc::new(app.create_user(1_000).await);
    let reservation = app.held(&user, seats[0]).await;

    let bodies = join_all((0..20).map(|_| {
        let (app, user) = (app.clone(), user.clone());
        async move {
            let response = app.pay(&user, reservation, Some("order-42")).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap().to_string()
        }
    }))
    .await;
    assert_eq!(bodies.iter().collect::<HashSet<_>>().len(), 1, "{bodies:?}");
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 1);
    assert_eq!(app.db.scalar("SELECT balance FROM users"), 900);

    let without_key = app.pay(&user, reservation, None).await;
    assert_eq!(without_key.status(), 409);
    assert_eq!(error_code(without_key).await, "already_paid");

    let other = app.held(&user, seats[1]).await;
    let reused = app.pay(&user, other, Some("order-42")).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(error_code(reused).await, "idempotency_key_reused");
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 1);
}

#[tokio::test]
async fn paying_without_enough_points_changes_nothing() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(1, 800).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = app.create_user(799).await;
    let reservation = app.held(&user, seat).await;

    let response = app.pay(&user, reservation, None).await;
    assert_eq!(response.status(), 409);
    assert_eq!(error_code(response).await, "insufficient_points");
    assert_eq!(app.db.scalar("SELECT balance FROM users"), 799);
    assert_eq!(app.db.scalar("SELECT count(*) FROM outbox"), 0);
}
